// torch-to-mpk on torch IR it cannot take: located errors, not tracebacks or
// an LLVM fatal error (issue 16).
// RUN: mpk-opt --allow-unregistered-dialect --split-input-file -verify-diagnostics --pass-pipeline='builtin.module(torch-to-mpk)' %s

func.func @name_not_a_string() -> !torch.vtensor<[8],f32> {
  // expected-error@+1 {{'torch.mpk.weight' needs a string 'name' (the parameter it binds), got 3 : i64}}
  %w = "torch.mpk.weight"() {name = 3 : i64} : () -> !torch.vtensor<[8],f32>
  return %w : !torch.vtensor<[8],f32>
}

// -----

func.func @no_name() -> !torch.vtensor<[8],f32> {
  // expected-error@+1 {{'torch.mpk.state' needs a string 'name' (the parameter it binds), got None}}
  %w = "torch.mpk.state"() : () -> !torch.vtensor<[8],f32>
  return %w : !torch.vtensor<[8],f32>
}

// -----

// An argmax without operands matches no pattern.
func.func @missing_operand() -> !torch.vtensor<[1],si64> {
  // expected-error@+1 {{unsupported use of torch.aten.argmax: no torch-to-mpk pattern matches it}}
  %i = "torch.aten.argmax"() : () -> !torch.vtensor<[1],si64>
  return %i : !torch.vtensor<[1],si64>
}

// -----

// An op of another dialect that uses a torch value would outlive the torch ops.
func.func @foreign_user(%x: !torch.vtensor<[1,8],f32>) -> !torch.vtensor<[1,8],f32> {
  %c = "torch.constant.int"() <{value = 2 : i64}> : () -> !torch.int
  // expected-error@+1 {{unsupported op other.op (no torch-to-mpk pattern)}}
  "other.op"(%c) : (!torch.int) -> ()
  return %x : !torch.vtensor<[1,8],f32>
}

// -----

// expected-error@+1 {{the function does not end with a 'func.return'}}
"func.func"() <{function_type = (!torch.vtensor<[1,8],f32>) -> (), sym_name = "no_return"}> ({
^bb0(%x: !torch.vtensor<[1,8],f32>):
  "other.end"() : () -> ()
}) : () -> ()

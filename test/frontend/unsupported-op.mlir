// An aten op without a torch-to-mpk pattern is an error at its location.
// RUN: mpk-opt --allow-unregistered-dialect --verify-diagnostics --split-input-file --pass-pipeline='builtin.module(torch-to-mpk)' %s

"func.func"() <{function_type = (!torch.vtensor<[2,8],f32>) -> !torch.vtensor<[2,8],f32>, sym_name = "gelu"}> ({
^bb0(%x: !torch.vtensor<[2,8],f32>):
  %none = "torch.constant.str"() <{value = "none"}> : () -> !torch.str
  // expected-error @below {{unsupported op torch.aten.gelu (no torch-to-mpk pattern)}}
  %y = "torch.aten.gelu"(%x, %none) : (!torch.vtensor<[2,8],f32>, !torch.str) -> !torch.vtensor<[2,8],f32>
  "func.return"(%y) : (!torch.vtensor<[2,8],f32>) -> ()
}) : () -> ()

// -----

// Ops downstream of the unsupported one are not reported: they are its victims.
"func.func"() <{function_type = (!torch.vtensor<[2,8],f32>) -> !torch.vtensor<[2,8],f32>, sym_name = "victims"}> ({
^bb0(%x: !torch.vtensor<[2,8],f32>):
  // expected-error @below {{unsupported op torch.aten.tanh (no torch-to-mpk pattern)}}
  %t = "torch.aten.tanh"(%x) : (!torch.vtensor<[2,8],f32>) -> !torch.vtensor<[2,8],f32>
  %one = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int
  %y = "torch.aten.add.Tensor"(%t, %x, %one) : (!torch.vtensor<[2,8],f32>, !torch.vtensor<[2,8],f32>, !torch.int) -> !torch.vtensor<[2,8],f32>
  "func.return"(%y) : (!torch.vtensor<[2,8],f32>) -> ()
}) : () -> ()

// -----

// A known op used in a way no pattern covers (a bias on linear).
"func.func"() <{function_type = (!torch.vtensor<[2,8],f32>) -> !torch.vtensor<[2,4],f32>, sym_name = "biased_linear"}> ({
^bb0(%x: !torch.vtensor<[2,8],f32>):
  %w = "torch.mpk.weight"() {name = "proj.weight"} : () -> !torch.vtensor<[4,8],f32>
  %b = "torch.mpk.weight"() {name = "proj.bias"} : () -> !torch.vtensor<[4],f32>
  // expected-error @below {{unsupported use of torch.aten.linear: no torch-to-mpk pattern matches it}}
  %y = "torch.aten.linear"(%x, %w, %b) : (!torch.vtensor<[2,8],f32>, !torch.vtensor<[4,8],f32>, !torch.vtensor<[4],f32>) -> !torch.vtensor<[2,4],f32>
  "func.return"(%y) : (!torch.vtensor<[2,4],f32>) -> ()
}) : () -> ()

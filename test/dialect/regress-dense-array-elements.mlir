// Dense arrays of element types the Python bindings have no class for (bf16,
// f16, si64, ...) raise when read, and abort the process when read as a
// dictionary entry: mpk-opt rejects them after parsing, located, before any
// verifier or pass reads an attribute (issue 16).
// RUN: mpk-opt %s -split-input-file -verify-diagnostics
// RUN: mpk-opt %s -split-input-file -verify-diagnostics --no-verify --pass-pipeline='builtin.module(mpk-partition)'

func.func @rope(%x: tensor<1x64xbf16>, %p: tensor<1xi32>) -> tensor<1x64xbf16> {
  // expected-error@+1 {{attribute 'inv_freq': expected a dense array of i1, i8, i16, i32, i64, f32 or f64 elements, got array<bf16: 1.000000e+00>}}
  %y = "mpk.rope"(%x, %p) {inv_freq = array<bf16: 1.0>} : (tensor<1x64xbf16>, tensor<1xi32>) -> tensor<1x64xbf16>
  return %y : tensor<1x64xbf16>
}

// -----

func.func @tile(%x: tensor<1x64xbf16>, %y: tensor<1x64xbf16>) -> tensor<1x64xbf16> {
  // expected-error@+1 {{attribute 'mpk.tile': expected a dense array of i1, i8, i16, i32, i64, f32 or f64 elements, got array<si64: 1, 8>}}
  %z = "mpk.add"(%x, %y) {mpk.tile = array<si64: 1, 8>} : (tensor<1x64xbf16>, tensor<1x64xbf16>) -> tensor<1x64xbf16>
  return %z : tensor<1x64xbf16>
}

// -----

// Inside a task group's params (a dictionary) and inside an array.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+2 {{attribute 'params.inv_freq': expected a dense array of i1, i8, i16, i32, i64, f32 or f64 elements, got array<f16: 5.000000e-01>}}
// expected-error@+1 {{attribute 'extra[1]': expected a dense array}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x, @x], outputs = [@y], params = {inv_freq = array<f16: 0.5>}, extra = [1, array<ui8: 3>]} : () -> ()

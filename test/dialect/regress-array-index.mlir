// A dense array of `index` elements aborts MLIR's parser (an assertion, exit
// 134): mpk-opt rejects it before parsing, located, wherever it is (issue 16).
// RUN: mpk-opt %s -split-input-file -verify-diagnostics

// expected-error@+1 {{expected a dense array of integer or float elements, got array<index: ...>}}
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90", extra = array<index: 1>} : () -> ()

// -----

func.func @f(%x: tensor<1x64xbf16>, %p: tensor<1xi32>) -> tensor<1x64xbf16> {
  // expected-error@+1 {{got array<index: ...>}}
  %y = "mpk.rope"(%x, %p) {inv_freq = array< index : 1>} : (tensor<1x64xbf16>, tensor<1xi32>) -> tensor<1x64xbf16>
  return %y : tensor<1x64xbf16>
}

// -----

// Through a type alias too.
!t = index
// expected-error@+1 {{got array<index: ...>}}
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90", extra = array<!t>} : () -> ()

// -----

// In a string or a comment it is text: array<index: 1>
"mpk.kernel"() {sym_name = "array<index: 1>", num_sms = 2 : i64, arch = "sm_90"} : () -> ()

// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample)' -split-input-file -verify-diagnostics

// A draw needs the step's positions: an argmax alone has none.
func.func @no_positions(%logits: tensor<2x64xf32>) -> tensor<2xi32> {
  // expected-error@+1 {{no 2-row positions in the function}}
  %next = "mpk.argmax"(%logits) : (tensor<2x64xf32>) -> tensor<2xi32>
  return %next : tensor<2xi32>
}

// -----

// expected-error@+1 {{mpk-sample rewrites graph IR: run it before 'mpk-partition'}}
"mpk.kernel"() {sym_name = "decode", num_sms = 4 : i64, arch = "sm_90"} : () -> ()

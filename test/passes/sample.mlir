// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample,mpk-verify)' -split-input-file | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample)' -split-input-file | mpk-opt -split-input-file | filecheck %s --check-prefix=ROUNDTRIP

// A greedy argmax becomes a sample: per-sequence params and seeds arrive as two
// new io arguments, the draw's positions are the step's positions.
// CHECK-LABEL: func.func @decode_step
// CHECK-SAME: %[[POS:arg1]]: tensor<2xi64>
// CHECK-SAME: %[[PARAMS:.*]]: tensor<2x4xf32> {mpk.io = "sample_params"}, %[[SEEDS:.*]]: tensor<2xi32> {mpk.io = "sample_seeds"}) -> (tensor<2xi32>, tensor<2x64xf32>)
// CHECK-NOT: mpk.argmax
// CHECK: %[[NEXT:.*]] = "mpk.sample"(%[[LOGITS:.*]], %[[POS]], %[[PARAMS]], %[[SEEDS]]) : (tensor<2x64xf32>, tensor<2xi64>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<2xi32>
// CHECK: return %[[NEXT]], %[[LOGITS]]
// ROUNDTRIP: "mpk.sample"
func.func @decode_step(%x: tensor<2x16xf32>, %pos: tensor<2xi64>) -> (tensor<2xi32>, tensor<2x64xf32>) {
  %r = "mpk.rope"(%x, %pos) {inv_freq = array<f32: 1.0, 0.5>} : (tensor<2x16xf32>, tensor<2xi64>) -> tensor<2x16xf32>
  %w = "mpk.weight"() {name = "lm_head.weight"} : () -> tensor<64x16xf32>
  %logits = "mpk.linear"(%r, %w) : (tensor<2x16xf32>, tensor<64x16xf32>) -> tensor<2x64xf32>
  %next = "mpk.argmax"(%logits) : (tensor<2x64xf32>) -> tensor<2xi32>
  return %next, %logits : tensor<2xi32>, tensor<2x64xf32>
}

// -----

// No argmax: nothing to do.
// CHECK-LABEL: func.func @no_argmax(%arg0: tensor<2x16xf32>) -> tensor<2x16xf32>
func.func @no_argmax(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
  return %x : tensor<2x16xf32>
}

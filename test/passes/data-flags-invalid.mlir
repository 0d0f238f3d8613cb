// RUN: mpk-opt %s -verify-diagnostics --pass-pipeline='builtin.module(mpk-partition,mpk-data-flags)'
// RUN: mpk-opt %S/Inputs/data-flags-steps.mlir -verify-diagnostics --pass-pipeline='builtin.module(mpk-data-flags)'
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-data-flags{max-x-bytes=-1})' 2>&1 | filecheck %s --check-prefix=NEGATIVE

// Negative bounds are refused.
// NEGATIVE: data-flags-invalid.mlir:{{[0-9]+}}:1: error: max-x-bytes must be 0 or more, not -1

// Flags take counters off events: without mpk-build-events there are none.
// expected-error@below {{no events: run 'mpk-build-events' before 'mpk-data-flags'}}
module {
  func.func @decode_step(%ids: tensor<1xi32>) -> tensor<1x64xbf16> {
    %table = "mpk.weight"() {name = "embed.weight"} : () -> tensor<100x64xbf16>
    %h = "mpk.embedding"(%ids, %table) {mpk.tile = array<i64: 1, 64>} : (tensor<1xi32>, tensor<100x64xbf16>) -> tensor<1x64xbf16>
    %w = "mpk.weight"() {name = "a.weight"} : () -> tensor<64x64xbf16>
    %y = "mpk.linear"(%h, %w) {mpk.tile = array<i64: 1, 16>} : (tensor<1x64xbf16>, tensor<64x64xbf16>) -> tensor<1x64xbf16>
    return %y : tensor<1x64xbf16>
  }
}

// RUN: mpk-opt %s -verify-diagnostics -split-input-file --pass-pipeline='builtin.module(mpk-stage-weights{ring-bytes=1024})'
// RUN: mpk-opt %S/Inputs/stage-weights-ring-bytes.mlir -verify-diagnostics --pass-pipeline='builtin.module(mpk-stage-weights{ring-bytes=1000})'

// Weights are staged per task group: graph IR has none yet.
// expected-error@below {{mpk-stage-weights works on task IR: run 'mpk-partition' first}}
module {
  func.func @f(%x: tensor<1x64xbf16>) -> tensor<1x64xbf16> {
    return %x : tensor<1x64xbf16>
  }
}

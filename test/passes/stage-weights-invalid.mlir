// RUN: mpk-opt %s -verify-diagnostics --pass-pipeline='builtin.module(mpk-stage-weights)'

// Stages are chosen per task group: graph IR has none yet.
// expected-error@below {{mpk-stage-weights works on task IR: run 'mpk-partition' first}}
module {
  func.func @f(%x: tensor<1x64xbf16>) -> tensor<1x64xbf16> {
    return %x : tensor<1x64xbf16>
  }
}

// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-shard{tp=2 rank=2})' 2>&1 | filecheck %s
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-shard{tp=0})' 2>&1 | filecheck %s --check-prefix=ZERO

// CHECK: error: expected tp >= 1 and 0 <= rank < tp, got tp=2 rank=2
// ZERO: error: expected tp >= 1 and 0 <= rank < tp, got tp=0 rank=0
func.func @decode_step(%h: tensor<1x64xbf16>) -> tensor<1x64xbf16> {
  return %h : tensor<1x64xbf16>
}

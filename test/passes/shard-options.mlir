// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-shard{tp=2 rank=1})' 2>&1 | filecheck %s
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-shard{tp=0})' 2>&1 | filecheck %s --check-prefix=ZERO
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-partition{allreduce=three-shot})' 2>&1 \
// RUN:   | filecheck %s --check-prefix=ALGORITHM

// One program serves every rank: the rank is chosen at load time, not by the pass.
// CHECK: 'mpk-shard' has no option 'rank' (options: tp)
// ZERO: error: expected tp >= 1, got tp=0
// ALGORITHM: error: allreduce must be auto, one-shot or two-shot, got 'three-shot'
func.func @decode_step(%h: tensor<1x64xbf16>) -> tensor<1x64xbf16> {
  return %h : tensor<1x64xbf16>
}

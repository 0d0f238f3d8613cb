// RUN: mpk-opt %s -split-input-file -verify-diagnostics --pass-pipeline='builtin.module(mpk-shard{tp=4})'

// Three query heads do not split over 4 ranks: an error at the attention.
func.func @decode_step(%h: tensor<1x96xbf16>, %pos: tensor<1xi32>) -> tensor<1x96xbf16> {
  %kc = "mpk.state"() {name = "l.k_cache"} : () -> tensor<1x16x32xbf16>
  %vc = "mpk.state"() {name = "l.v_cache"} : () -> tensor<1x16x32xbf16>
  // expected-error@+1 {{3 query heads do not split over tp=4 ranks}}
  %o = "mpk.attention"(%h, %kc, %vc, %pos) {head_dim = 32 : i64, scale = 0.17677669 : f32} : (tensor<1x96xbf16>, tensor<1x16x32xbf16>, tensor<1x16x32xbf16>, tensor<1xi32>) -> tensor<1x96xbf16>
  return %o : tensor<1x96xbf16>
}

// -----

// Three KV heads neither split over 2 ranks nor replicate on them.
func.func @decode_step(%h: tensor<1x384xbf16>, %pos: tensor<1xi32>) -> tensor<1x384xbf16> {
  %kc = "mpk.state"() {name = "l.k_cache"} : () -> tensor<1x16x96xbf16>
  %vc = "mpk.state"() {name = "l.v_cache"} : () -> tensor<1x16x96xbf16>
  // expected-error@+1 {{3 KV heads neither split over tp=4 ranks nor replicate on them}}
  %o = "mpk.attention"(%h, %kc, %vc, %pos) {head_dim = 32 : i64, scale = 0.17677669 : f32} : (tensor<1x384xbf16>, tensor<1x16x96xbf16>, tensor<1x16x96xbf16>, tensor<1xi32>) -> tensor<1x384xbf16>
  return %o : tensor<1x384xbf16>
}

// -----

// No attention to take the heads from: refused at the module.
// expected-error@+1 {{mpk-shard needs the decode step's attentions (none found)}}
module {
  func.func @decode_step(%h: tensor<1x64xbf16>) -> tensor<1x64xbf16> {
    return %h : tensor<1x64xbf16>
  }
}

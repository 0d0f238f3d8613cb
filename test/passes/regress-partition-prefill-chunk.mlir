// A prefill attention whose chunk has no tile of whole 16-row matrix blocks is
// a located error of mpk-partition, not a traceback (issue 16).
// RUN: mpk-opt %s -verify-diagnostics --pass-pipeline='builtin.module(mpk-partition)'

func.func @prefill_step(%q: tensor<4x64xbf16>, %pos: tensor<4xi32>) -> tensor<4x64xbf16> {
  %kc = "mpk.state"() {name = "k_cache"} : () -> tensor<1x16x64xbf16>
  %vc = "mpk.state"() {name = "v_cache"} : () -> tensor<1x16x64xbf16>
  // expected-error@+1 {{a prefill chunk of 4 rows with 1 query heads per KV head has no tile of whole 16-row matrix blocks}}
  %o = "mpk.attention"(%q, %kc, %vc, %pos) {head_dim = 64 : i64, scale = 0.125 : f32} : (tensor<4x64xbf16>, tensor<1x16x64xbf16>, tensor<1x16x64xbf16>, tensor<4xi32>) -> tensor<4x64xbf16>
  return %o : tensor<4x64xbf16>
}

// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-prefill{chunk=16})' -split-input-file -verify-diagnostics
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-prefill{chunk=0})' -split-input-file 2>&1 | filecheck %s --check-prefix=ZERO
// ZERO: error: chunk must be positive, got 0

// A chunk longer than the KV cache.
// expected-error@+1 {{chunk 16 is longer than the KV cache (8 rows)}}
func.func @short_cache(%t: tensor<1xi32>, %pos: tensor<1xi32>) -> tensor<1xi32> {
  %emb = "mpk.weight"() {name = "embed.weight"} : () -> tensor<64x16xbf16>
  %x = "mpk.embedding"(%t, %emb) : (tensor<1xi32>, tensor<64x16xbf16>) -> tensor<1x16xbf16>
  %kc = "mpk.state"() {name = "k_cache"} : () -> tensor<1x8x16xbf16>
  %kc1 = "mpk.kv_append"(%kc, %x, %pos) : (tensor<1x8x16xbf16>, tensor<1x16xbf16>, tensor<1xi32>) -> tensor<1x8x16xbf16>
  %o = "mpk.attention"(%x, %kc1, %kc1, %pos) {head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x16xbf16>, tensor<1x8x16xbf16>, tensor<1x8x16xbf16>, tensor<1xi32>) -> tensor<1x16xbf16>
  %logits = "mpk.linear"(%o, %emb) : (tensor<1x16xbf16>, tensor<64x16xbf16>) -> tensor<1x64xbf16>
  %next = "mpk.argmax"(%logits) : (tensor<1x64xbf16>) -> tensor<1xi32>
  return %next : tensor<1xi32>
}

// -----

// Already a prefill step: 4 rows over one sequence.
func.func @twice(%t: tensor<4xi32>, %pos: tensor<4xi32>) -> tensor<4xi32> {
  %emb = "mpk.weight"() {name = "embed.weight"} : () -> tensor<64x16xbf16>
  %x = "mpk.embedding"(%t, %emb) : (tensor<4xi32>, tensor<64x16xbf16>) -> tensor<4x16xbf16>
  %kc = "mpk.state"() {name = "k_cache"} : () -> tensor<1x64x16xbf16>
  // expected-error@+1 {{4 rows over 1 sequences: already a prefill step}}
  %kc1 = "mpk.kv_append"(%kc, %x, %pos) : (tensor<1x64x16xbf16>, tensor<4x16xbf16>, tensor<4xi32>) -> tensor<1x64x16xbf16>
  %o = "mpk.attention"(%x, %kc1, %kc1, %pos) {head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<4x16xbf16>, tensor<1x64x16xbf16>, tensor<1x64x16xbf16>, tensor<4xi32>) -> tensor<4x16xbf16>
  %logits = "mpk.linear"(%o, %emb) : (tensor<4x16xbf16>, tensor<64x16xbf16>) -> tensor<4x64xbf16>
  %next = "mpk.argmax"(%logits) : (tensor<4x64xbf16>) -> tensor<4xi32>
  return %next : tensor<4xi32>
}

// -----

// The logits must come from an LM head (a linear), whose rows the gather picks.
func.func @no_head(%t: tensor<1xi32>, %pos: tensor<1xi32>) -> tensor<1xi32> {
  %emb = "mpk.weight"() {name = "embed.weight"} : () -> tensor<64x16xbf16>
  %x = "mpk.embedding"(%t, %emb) : (tensor<1xi32>, tensor<64x16xbf16>) -> tensor<1x16xbf16>
  %kc = "mpk.state"() {name = "k_cache"} : () -> tensor<1x64x16xbf16>
  %kc1 = "mpk.kv_append"(%kc, %x, %pos) : (tensor<1x64x16xbf16>, tensor<1x16xbf16>, tensor<1xi32>) -> tensor<1x64x16xbf16>
  %o = "mpk.attention"(%x, %kc1, %kc1, %pos) {head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x16xbf16>, tensor<1x64x16xbf16>, tensor<1x64x16xbf16>, tensor<1xi32>) -> tensor<1x16xbf16>
  // expected-error@+1 {{the logits are not produced by an mpk.linear (the LM head)}}
  %next = "mpk.argmax"(%o) : (tensor<1x16xbf16>) -> tensor<1xi32>
  return %next : tensor<1xi32>
}

// -----

// expected-error@+1 {{mpk-prefill rewrites graph IR: run it before 'mpk-partition'}}
"mpk.kernel"() {sym_name = "decode", num_sms = 4 : i64, arch = "sm_90"} : () -> ()

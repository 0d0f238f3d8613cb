// Every graph-level op round-trips: pretty, then generic, then pretty again.
// RUN: mpk-opt %s | mpk-opt | filecheck %s
// RUN: mpk-opt %s --mlir-print-op-generic | mpk-opt | filecheck %s

// CHECK-LABEL: func.func @decode_step
func.func @decode_step(%tokens: tensor<2xi32>, %pos: tensor<2xi32>) -> (tensor<2xi32>, tensor<2x64xbf16>) {
  // CHECK: "mpk.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xbf16>
  %emb = "mpk.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x32xbf16>
  %norm_w = "mpk.weight"() {name = "model.norm.weight"} : () -> tensor<32xbf16>
  %qn_w = "mpk.weight"() {name = "model.layers.0.self_attn.q_norm.weight"} : () -> tensor<8xbf16>
  %wq = "mpk.weight"() {name = "model.layers.0.self_attn.q_proj.weight"} : () -> tensor<32x32xbf16>
  %wk = "mpk.weight"() {name = "model.layers.0.self_attn.k_proj.weight"} : () -> tensor<16x32xbf16>
  %wo = "mpk.weight"() {name = "model.layers.0.self_attn.o_proj.weight"} : () -> tensor<32x32xbf16>
  // CHECK: "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<2x16x16xbf16>
  %kc = "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<2x16x16xbf16>
  %vc = "mpk.state"() {name = "layers.0.v_cache"} : () -> tensor<2x16x16xbf16>
  // CHECK: "mpk.embedding"(%{{.*}}, %{{.*}}) : (tensor<2xi32>, tensor<64x32xbf16>) -> tensor<2x32xbf16>
  %h = "mpk.embedding"(%tokens, %emb) : (tensor<2xi32>, tensor<64x32xbf16>) -> tensor<2x32xbf16>
  // CHECK: "mpk.rmsnorm"(%{{.*}}, %{{.*}}) {eps = 9.99999997E-7 : f32}
  %x = "mpk.rmsnorm"(%h, %norm_w) {eps = 1.0e-6 : f32} : (tensor<2x32xbf16>, tensor<32xbf16>) -> tensor<2x32xbf16>
  // CHECK: "mpk.linear"(%{{.*}}, %{{.*}}) : (tensor<2x32xbf16>, tensor<32x32xbf16>) -> tensor<2x32xbf16>
  %q = "mpk.linear"(%x, %wq) : (tensor<2x32xbf16>, tensor<32x32xbf16>) -> tensor<2x32xbf16>
  %k = "mpk.linear"(%x, %wk) : (tensor<2x32xbf16>, tensor<16x32xbf16>) -> tensor<2x16xbf16>
  %qn = "mpk.rmsnorm"(%q, %qn_w) {eps = 1.0e-6 : f32} : (tensor<2x32xbf16>, tensor<8xbf16>) -> tensor<2x32xbf16>
  // CHECK: "mpk.rope"(%{{.*}}, %{{.*}}) {inv_freq = array<f32: 1.000000e+00, 1.000000e-01, 0.00999999977, 1.000000e-03>}
  %qr = "mpk.rope"(%qn, %pos) {inv_freq = array<f32: 1.0, 0.1, 0.01, 0.001>} : (tensor<2x32xbf16>, tensor<2xi32>) -> tensor<2x32xbf16>
  %kr = "mpk.rope"(%k, %pos) {inv_freq = array<f32: 1.0, 0.1, 0.01, 0.001>} : (tensor<2x16xbf16>, tensor<2xi32>) -> tensor<2x16xbf16>
  // CHECK: "mpk.kv_append"(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<2x16x16xbf16>, tensor<2x16xbf16>, tensor<2xi32>) -> tensor<2x16x16xbf16>
  %kc1 = "mpk.kv_append"(%kc, %kr, %pos) : (tensor<2x16x16xbf16>, tensor<2x16xbf16>, tensor<2xi32>) -> tensor<2x16x16xbf16>
  %vc1 = "mpk.kv_append"(%vc, %k, %pos) : (tensor<2x16x16xbf16>, tensor<2x16xbf16>, tensor<2xi32>) -> tensor<2x16x16xbf16>
  // CHECK: "mpk.attention"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) {head_dim = 8 : i64, scale = 0.353553385 : f32}
  %att = "mpk.attention"(%qr, %kc1, %vc1, %pos) {head_dim = 8 : i64, scale = 0.353553385 : f32} : (tensor<2x32xbf16>, tensor<2x16x16xbf16>, tensor<2x16x16xbf16>, tensor<2xi32>) -> tensor<2x32xbf16>
  // CHECK: "mpk.linear"(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<2x32xbf16>, tensor<32x32xbf16>, tensor<2x32xbf16>) -> tensor<2x32xbf16>
  %o = "mpk.linear"(%att, %wo, %h) : (tensor<2x32xbf16>, tensor<32x32xbf16>, tensor<2x32xbf16>) -> tensor<2x32xbf16>
  // CHECK: "mpk.silu_mul"
  %s = "mpk.silu_mul"(%o, %o) : (tensor<2x32xbf16>, tensor<2x32xbf16>) -> tensor<2x32xbf16>
  // CHECK: "mpk.add"
  %a = "mpk.add"(%s, %o) : (tensor<2x32xbf16>, tensor<2x32xbf16>) -> tensor<2x32xbf16>
  // CHECK: "mpk.allreduce"
  %r = "mpk.allreduce"(%a) {ranks = 1 : i64} : (tensor<2x32xbf16>) -> tensor<2x32xbf16>
  %part = "mpk.linear"(%r, %emb) : (tensor<2x32xbf16>, tensor<64x32xbf16>) -> tensor<2x64xbf16>
  // CHECK: "mpk.allgather"(%{{.*}}) {ranks = 1 : i64} : (tensor<2x64xbf16>) -> tensor<2x64xbf16>
  %logits = "mpk.allgather"(%part) {ranks = 1 : i64} : (tensor<2x64xbf16>) -> tensor<2x64xbf16>
  // CHECK: "mpk.argmax"(%{{.*}}) : (tensor<2x64xbf16>) -> tensor<2xi32>
  %next = "mpk.argmax"(%logits) : (tensor<2x64xbf16>) -> tensor<2xi32>
  return %next, %logits : tensor<2xi32>, tensor<2x64xbf16>
}

// A prefill step: 2 sequences of 4 rows each (row r is sequence r / 4), the
// last rows gathered (an embedding of activations) and sampled.
// CHECK-LABEL: func.func @prefill_step
func.func @prefill_step(%tokens: tensor<8xi32>, %pos: tensor<8xi32>, %last: tensor<2xi32> {mpk.io = "last_rows"},
                        %params: tensor<2x4xf32>, %seeds: tensor<2xi32>, %lpos: tensor<2xi32>) -> tensor<2xi32> {
  %emb = "mpk.weight"() {name = "model.embed_tokens.weight"} : () -> tensor<64x16xbf16>
  %kc = "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<2x16x16xbf16>
  %h = "mpk.embedding"(%tokens, %emb) : (tensor<8xi32>, tensor<64x16xbf16>) -> tensor<8x16xbf16>
  // CHECK: "mpk.kv_append"(%{{.*}}, %{{.*}}, %{{.*}}) : (tensor<2x16x16xbf16>, tensor<8x16xbf16>, tensor<8xi32>) -> tensor<2x16x16xbf16>
  %kc1 = "mpk.kv_append"(%kc, %h, %pos) : (tensor<2x16x16xbf16>, tensor<8x16xbf16>, tensor<8xi32>) -> tensor<2x16x16xbf16>
  // CHECK: "mpk.attention"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) {head_dim = 8 : i64, scale = 0.353553385 : f32} : (tensor<8x16xbf16>, tensor<2x16x16xbf16>, tensor<2x16x16xbf16>, tensor<8xi32>) -> tensor<8x16xbf16>
  %att = "mpk.attention"(%h, %kc1, %kc1, %pos) {head_dim = 8 : i64, scale = 0.353553385 : f32} : (tensor<8x16xbf16>, tensor<2x16x16xbf16>, tensor<2x16x16xbf16>, tensor<8xi32>) -> tensor<8x16xbf16>
  // CHECK: "mpk.embedding"(%{{.*}}, %{{.*}}) : (tensor<2xi32>, tensor<8x16xbf16>) -> tensor<2x16xbf16>
  %x = "mpk.embedding"(%last, %att) : (tensor<2xi32>, tensor<8x16xbf16>) -> tensor<2x16xbf16>
  %logits = "mpk.linear"(%x, %emb) : (tensor<2x16xbf16>, tensor<64x16xbf16>) -> tensor<2x64xbf16>
  // CHECK: "mpk.sample"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (tensor<2x64xbf16>, tensor<2xi32>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<2xi32>
  %next = "mpk.sample"(%logits, %lpos, %params, %seeds) : (tensor<2x64xbf16>, tensor<2xi32>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<2xi32>
  return %next : tensor<2xi32>
}

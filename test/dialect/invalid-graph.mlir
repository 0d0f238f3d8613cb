// One chunk per graph-level verifier rule (dialects/README.md, [V]).
// RUN: mpk-opt %s -split-input-file -verify-diagnostics

// static shapes
func.func @f0(%x: tensor<?x4xf32>) {
  // expected-error@+1 {{expects statically shaped ranked tensors}}
  %0 = "mpk.add"(%x, %x) : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  return
}

// -----

// weight name
func.func @f1() {
  // expected-error@+1 {{'name' must not be empty}}
  %0 = "mpk.weight"() {name = ""} : () -> tensor<4xf32>
  return
}

// -----

// weight dtype
func.func @f2() {
  // expected-error@+1 {{result element type must be one of bf16, f16, f32}}
  %0 = "mpk.weight"() {name = "w"} : () -> tensor<4xi32>
  return
}

// -----

// state dtype
func.func @f3() {
  // expected-error@+1 {{result element type must be one of}}
  %0 = "mpk.state"() {name = "k"} : () -> tensor<4xi8>
  return
}

// -----

// embedding ids
func.func @f4(%i: tensor<2xf32>, %t: tensor<8x4xf32>) {
  // expected-error@+1 {{ids must be a 1-D i32/i64 tensor}}
  %0 = "mpk.embedding"(%i, %t) : (tensor<2xf32>, tensor<8x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// embedding table
func.func @f5(%i: tensor<2xi32>, %t: tensor<8xf32>) {
  // expected-error@+1 {{table must be a 2-D float tensor}}
  %0 = "mpk.embedding"(%i, %t) : (tensor<2xi32>, tensor<8xf32>) -> tensor<2x4xf32>
  return
}

// -----

// embedding result
func.func @f6(%i: tensor<2xi32>, %t: tensor<8x4xf32>) {
  // expected-error@+1 {{result must be tensor<2x4xf32>}}
  %0 = "mpk.embedding"(%i, %t) : (tensor<2xi32>, tensor<8x4xf32>) -> tensor<2x8xf32>
  return
}

// -----

// rmsnorm x rank
func.func @f7(%x: tensor<4xf32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{x must be 2-D [batch, features]}}
  %0 = "mpk.rmsnorm"(%x, %w) {eps = 1.0e-6 : f32} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

// rmsnorm w rank
func.func @f8(%x: tensor<2x4xf32>, %w: tensor<1x4xf32>) {
  // expected-error@+1 {{weight must be 1-D}}
  %0 = "mpk.rmsnorm"(%x, %w) {eps = 1.0e-6 : f32} : (tensor<2x4xf32>, tensor<1x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// rmsnorm groups
func.func @f9(%x: tensor<2x4xf32>, %w: tensor<3xf32>) {
  // expected-error@+1 {{must be a multiple of the weight size (3)}}
  %0 = "mpk.rmsnorm"(%x, %w) {eps = 1.0e-6 : f32} : (tensor<2x4xf32>, tensor<3xf32>) -> tensor<2x4xf32>
  return
}

// -----

// rmsnorm dtype
func.func @f10(%x: tensor<2x4xf32>, %w: tensor<4xbf16>) {
  // expected-error@+1 {{weight element type bf16 differs from x's f32}}
  %0 = "mpk.rmsnorm"(%x, %w) {eps = 1.0e-6 : f32} : (tensor<2x4xf32>, tensor<4xbf16>) -> tensor<2x4xf32>
  return
}

// -----

// rmsnorm result
func.func @f11(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{result and x must have the same type}}
  %0 = "mpk.rmsnorm"(%x, %w) {eps = 1.0e-6 : f32} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xbf16>
  return
}

// -----

// rmsnorm eps
func.func @f12(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{'eps' must be positive}}
  %0 = "mpk.rmsnorm"(%x, %w) {eps = 0.0 : f32} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// rmsnorm eps kind
func.func @f13(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{expected base attribute 'builtin.float' but got 'builtin.integer'}}
  %0 = "mpk.rmsnorm"(%x, %w) {eps = 1 : i64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// linear x dtype
func.func @f14(%x: tensor<2x4xi32>, %w: tensor<8x4xf32>) {
  // expected-error@+1 {{x must have a float element type}}
  %0 = "mpk.linear"(%x, %w) : (tensor<2x4xi32>, tensor<8x4xf32>) -> tensor<2x8xf32>
  return
}

// -----

// linear w rank
func.func @f15(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{weight must be 2-D [out, in]}}
  %0 = "mpk.linear"(%x, %w) : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x8xf32>
  return
}

// -----

// linear K
func.func @f16(%x: tensor<2x4xf32>, %w: tensor<8x5xf32>) {
  // expected-error@+1 {{weight has 5 input features but x has 4}}
  %0 = "mpk.linear"(%x, %w) : (tensor<2x4xf32>, tensor<8x5xf32>) -> tensor<2x8xf32>
  return
}

// -----

// linear dtype
func.func @f17(%x: tensor<2x4xf32>, %w: tensor<8x4xbf16>) {
  // expected-error@+1 {{weight element type bf16 differs}}
  %0 = "mpk.linear"(%x, %w) : (tensor<2x4xf32>, tensor<8x4xbf16>) -> tensor<2x8xf32>
  return
}

// -----

// linear result
func.func @f18(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>) {
  // expected-error@+1 {{result must be tensor<2x8xf32>}}
  %0 = "mpk.linear"(%x, %w) : (tensor<2x4xf32>, tensor<8x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// linear residual
func.func @f19(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>, %r: tensor<2x4xf32>) {
  // expected-error@+1 {{residual and result must have the same type}}
  %0 = "mpk.linear"(%x, %w, %r) : (tensor<2x4xf32>, tensor<8x4xf32>, tensor<2x4xf32>) -> tensor<2x8xf32>
  return
}

// -----

// rope inv_freq empty
func.func @f20(%x: tensor<2x8xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{'inv_freq' must be a non-empty array<f32: ...>}}
  %0 = "mpk.rope"(%x, %p) {inv_freq = array<f32>} : (tensor<2x8xf32>, tensor<2xi32>) -> tensor<2x8xf32>
  return
}

// -----

// rope inv_freq type
func.func @f21(%x: tensor<2x8xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{'inv_freq' must be a non-empty array<f32: ...>}}
  %0 = "mpk.rope"(%x, %p) {inv_freq = array<i64: 1>} : (tensor<2x8xf32>, tensor<2xi32>) -> tensor<2x8xf32>
  return
}

// -----

// rope width
func.func @f22(%x: tensor<2x6xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{x width 6 is not a multiple of the head dim 4}}
  %0 = "mpk.rope"(%x, %p) {inv_freq = array<f32: 1.0, 0.5>} : (tensor<2x6xf32>, tensor<2xi32>) -> tensor<2x6xf32>
  return
}

// -----

// rope positions
func.func @f23(%x: tensor<2x8xf32>, %p: tensor<3xi32>) {
  // expected-error@+1 {{positions must be a 1-D i32/i64 tensor of length 2}}
  %0 = "mpk.rope"(%x, %p) {inv_freq = array<f32: 1.0, 0.5>} : (tensor<2x8xf32>, tensor<3xi32>) -> tensor<2x8xf32>
  return
}

// -----

// rope result
func.func @f24(%x: tensor<2x8xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{result and x must have the same type}}
  %0 = "mpk.rope"(%x, %p) {inv_freq = array<f32: 1.0, 0.5>} : (tensor<2x8xf32>, tensor<2xi32>) -> tensor<2x4xf32>
  return
}

// -----

// attention q rank
func.func @f25(%q: tensor<16xf32>, %k: tensor<1x8x8xf32>, %v: tensor<1x8x8xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{q must be 2-D}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1xi32>) -> tensor<16xf32>
  return
}

// -----

// attention cache rank
func.func @f26(%q: tensor<1x16xf32>, %k: tensor<8x8xf32>, %v: tensor<8x8xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{k_cache must be 3-D}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x16xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<1xi32>) -> tensor<1x16xf32>
  return
}

// -----

// attention k v
func.func @f27(%q: tensor<1x16xf32>, %k: tensor<1x8x8xf32>, %v: tensor<1x8x4xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{k_cache and v_cache must have the same type}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x16xf32>, tensor<1x8x8xf32>, tensor<1x8x4xf32>, tensor<1xi32>) -> tensor<1x16xf32>
  return
}

// -----

// attention head_dim
func.func @f28(%q: tensor<1x16xf32>, %k: tensor<1x8x8xf32>, %v: tensor<1x8x8xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{'head_dim' must be positive}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 0 : i64, scale = 0.5 : f32} : (tensor<1x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1xi32>) -> tensor<1x16xf32>
  return
}

// -----

// attention batch: every sequence has the same number of query rows
func.func @f29(%q: tensor<1x16xf32>, %k: tensor<2x8x8xf32>, %v: tensor<2x8x8xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{q rows (1) must be a multiple of the cache batch (2)}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x16xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<1xi32>) -> tensor<1x16xf32>
  return
}

// -----

// attention dtype
func.func @f30(%q: tensor<1x16xf32>, %k: tensor<1x8x8xbf16>, %v: tensor<1x8x8xbf16>, %p: tensor<1xi32>) {
  // expected-error@+1 {{cache element type bf16 differs}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x16xf32>, tensor<1x8x8xbf16>, tensor<1x8x8xbf16>, tensor<1xi32>) -> tensor<1x16xf32>
  return
}

// -----

// attention divides
func.func @f31(%q: tensor<1x16xf32>, %k: tensor<1x8x8xf32>, %v: tensor<1x8x8xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{head_dim 3 must divide the q width 16 and the cache width 8}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 3 : i64, scale = 0.5 : f32} : (tensor<1x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1xi32>) -> tensor<1x16xf32>
  return
}

// -----

// attention gqa
func.func @f32(%q: tensor<1x12xf32>, %k: tensor<1x8x8xf32>, %v: tensor<1x8x8xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{kv heads (2) must divide query heads (3)}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x12xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1xi32>) -> tensor<1x12xf32>
  return
}

// -----

// attention scale
func.func @f33(%q: tensor<1x16xf32>, %k: tensor<1x8x8xf32>, %v: tensor<1x8x8xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{'scale' must be positive}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = -1.0 : f32} : (tensor<1x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1xi32>) -> tensor<1x16xf32>
  return
}

// -----

// attention positions
func.func @f34(%q: tensor<1x16xf32>, %k: tensor<1x8x8xf32>, %v: tensor<1x8x8xf32>, %p: tensor<1xf32>) {
  // expected-error@+1 {{positions must be a 1-D i32/i64 tensor of length 1}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1xf32>) -> tensor<1x16xf32>
  return
}

// -----

// attention result
func.func @f35(%q: tensor<1x16xf32>, %k: tensor<1x8x8xf32>, %v: tensor<1x8x8xf32>, %p: tensor<1xi32>) {
  // expected-error@+1 {{result and q must have the same type}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<1x16xf32>, tensor<1x8x8xf32>, tensor<1x8x8xf32>, tensor<1xi32>) -> tensor<1x8xf32>
  return
}

// -----

// kv cache rank
func.func @f36(%c: tensor<8x4xf32>, %n: tensor<2x4xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{cache must be 3-D}}
  %0 = "mpk.kv_append"(%c, %n, %p) : (tensor<8x4xf32>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<8x4xf32>
  return
}

// -----

// kv new rank
func.func @f37(%c: tensor<2x8x4xf32>, %n: tensor<4xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{new must be 2-D}}
  %0 = "mpk.kv_append"(%c, %n, %p) : (tensor<2x8x4xf32>, tensor<4xf32>, tensor<2xi32>) -> tensor<2x8x4xf32>
  return
}

// -----

// kv new shape
func.func @f38(%c: tensor<2x8x4xf32>, %n: tensor<2x3xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{new must be tensor<Rx4xf32>, R a multiple of the cache batch 2}}
  %0 = "mpk.kv_append"(%c, %n, %p) : (tensor<2x8x4xf32>, tensor<2x3xf32>, tensor<2xi32>) -> tensor<2x8x4xf32>
  return
}

// -----

// kv positions
func.func @f39(%c: tensor<2x8x4xf32>, %n: tensor<2x4xf32>, %p: tensor<3xi64>) {
  // expected-error@+1 {{positions must be a 1-D i32/i64 tensor of length 2}}
  %0 = "mpk.kv_append"(%c, %n, %p) : (tensor<2x8x4xf32>, tensor<2x4xf32>, tensor<3xi64>) -> tensor<2x8x4xf32>
  return
}

// -----

// kv result
func.func @f40(%c: tensor<2x8x4xf32>, %n: tensor<2x4xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{result and cache must have the same type}}
  %0 = "mpk.kv_append"(%c, %n, %p) : (tensor<2x8x4xf32>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<2x8x4xbf16>
  return
}

// -----

// silu_mul types
func.func @f41(%a: tensor<2x4xf32>, %b: tensor<2x8xf32>) {
  // expected-error@+1 {{operands and result must have the same type}}
  %0 = "mpk.silu_mul"(%a, %b) : (tensor<2x4xf32>, tensor<2x8xf32>) -> tensor<2x4xf32>
  return
}

// -----

// add rank
func.func @f42(%a: tensor<4xf32>) {
  // expected-error@+1 {{operand must be 2-D}}
  %0 = "mpk.add"(%a, %a) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

// allreduce type
func.func @f43(%a: tensor<2x4xf32>) {
  // expected-error@+1 {{x, residual and result must have the same type}}
  %0 = "mpk.allreduce"(%a) {ranks = 2 : i64} : (tensor<2x4xf32>) -> tensor<2x4xbf16>
  return
}

// -----

// argmax logits
func.func @f44(%a: tensor<4xf32>) {
  // expected-error@+1 {{logits must be 2-D}}
  %0 = "mpk.argmax"(%a) : (tensor<4xf32>) -> tensor<1xi32>
  return
}

// -----

// argmax result
func.func @f45(%a: tensor<2x4xf32>) {
  // expected-error@+1 {{result must be a 1-D i32/i64 tensor of length 2}}
  %0 = "mpk.argmax"(%a) : (tensor<2x4xf32>) -> tensor<2xf32>
  return
}

// -----

// irdl operand count
func.func @f46(%a: tensor<2x4xf32>) {
  // expected-error@+1 {{expects exactly 2 operands}}
  %0 = "mpk.add"(%a) : (tensor<2x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// irdl tensor operand
func.func @f47(%a: memref<2x4xf32>) {
  // expected-error@+1 {{tensor}}
  %0 = "mpk.add"(%a, %a) : (memref<2x4xf32>, memref<2x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// irdl attribute
func.func @f48(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error@+1 {{attribute "eps" is expected but not provided}}
  %0 = "mpk.rmsnorm"(%x, %w) : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// kv rows: a prefill's rows must split evenly over the sequences
func.func @kv_rows(%c: tensor<2x8x4xf32>, %n: tensor<3x4xf32>, %p: tensor<3xi32>) {
  // expected-error@+1 {{R a multiple of the cache batch 2}}
  %0 = "mpk.kv_append"(%c, %n, %p) : (tensor<2x8x4xf32>, tensor<3x4xf32>, tensor<3xi32>) -> tensor<2x8x4xf32>
  return
}

// -----

// attention rows: one position per query row
func.func @attention_rows(%q: tensor<4x16xf32>, %k: tensor<2x8x8xf32>, %v: tensor<2x8x8xf32>, %p: tensor<2xi32>) {
  // expected-error@+1 {{positions must be a 1-D i32/i64 tensor of length 4 (one per row)}}
  %0 = "mpk.attention"(%q, %k, %v, %p) {head_dim = 4 : i64, scale = 0.5 : f32} : (tensor<4x16xf32>, tensor<2x8x8xf32>, tensor<2x8x8xf32>, tensor<2xi32>) -> tensor<4x16xf32>
  return
}

// -----

// sample params
func.func @sample_params(%l: tensor<2x8xf32>, %p: tensor<2xi32>, %s: tensor<2x3xf32>, %seed: tensor<2xi32>) {
  // expected-error@+1 {{params must be tensor<2x4xf32> (temperature, top_k, top_p, min_p per row)}}
  %0 = "mpk.sample"(%l, %p, %s, %seed) : (tensor<2x8xf32>, tensor<2xi32>, tensor<2x3xf32>, tensor<2xi32>) -> tensor<2xi32>
  return
}

// -----

// sample seeds
func.func @sample_seeds(%l: tensor<2x8xf32>, %p: tensor<2xi32>, %s: tensor<2x4xf32>, %seed: tensor<2xf32>) {
  // expected-error@+1 {{seeds must be a 1-D i32/i64 tensor of length 2}}
  %0 = "mpk.sample"(%l, %p, %s, %seed) : (tensor<2x8xf32>, tensor<2xi32>, tensor<2x4xf32>, tensor<2xf32>) -> tensor<2xi32>
  return
}

// -----

// sample positions
func.func @sample_positions(%l: tensor<2x8xf32>, %p: tensor<3xi32>, %s: tensor<2x4xf32>, %seed: tensor<2xi32>) {
  // expected-error@+1 {{positions must be a 1-D i32/i64 tensor of length 2}}
  %0 = "mpk.sample"(%l, %p, %s, %seed) : (tensor<2x8xf32>, tensor<3xi32>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<2xi32>
  return
}

// -----

// sample result
func.func @sample_result(%l: tensor<2x8xf32>, %p: tensor<2xi32>, %s: tensor<2x4xf32>, %seed: tensor<2xi32>) {
  // expected-error@+1 {{result must be a 1-D i32/i64 tensor of length 2}}
  %0 = "mpk.sample"(%l, %p, %s, %seed) : (tensor<2x8xf32>, tensor<2xi32>, tensor<2x4xf32>, tensor<2xi32>) -> tensor<2xf32>
  return
}

// -----

// gate_up weights of different types (the graph op lowering/kinds/gate_up.py declares)
func.func @gate_up_weights(%x: tensor<1x64xbf16>, %g: tensor<128x64xbf16>, %u: tensor<96x64xbf16>) {
  // expected-error@+1 {{w_gate and w_up must have the same type}}
  %0 = "mpk.gate_up"(%x, %g, %u) : (tensor<1x64xbf16>, tensor<128x64xbf16>, tensor<96x64xbf16>) -> tensor<1x128xbf16>
  return
}

// -----

// rope_append k of other width than a cache row
func.func @rope_append_k(%q: tensor<1x128xbf16>, %k: tensor<1x32xbf16>, %v: tensor<1x32xbf16>,
                         %kc: tensor<1x16x64xbf16>, %vc: tensor<1x16x64xbf16>, %p: tensor<1xi32>) {
  // expected-error@+1 {{k and v must be tensor<1x64xbf16> (q's rows, a cache row)}}
  %0:3 = "mpk.rope_append"(%q, %k, %v, %kc, %vc, %p) {head_dim = 32 : i64, inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>} : (tensor<1x128xbf16>, tensor<1x32xbf16>, tensor<1x32xbf16>, tensor<1x16x64xbf16>, tensor<1x16x64xbf16>, tensor<1xi32>) -> (tensor<1x128xbf16>, tensor<1x16x64xbf16>, tensor<1x16x64xbf16>)
  return
}

// -----

// a graph op's attributes are its kind's params: an unknown one is refused
func.func @linear_param(%x: tensor<1x64xbf16>, %w: tensor<32x64xbf16>) {
  // expected-error@+1 {{unknown param 'norm' (takes: norm_eps, silu_gate, row_counts, unroll, staged_weights, early_weights, ranks)}}
  %0 = "mpk.linear"(%x, %w) {norm = 1.0 : f32} : (tensor<1x64xbf16>, tensor<32x64xbf16>) -> tensor<1x32xbf16>
  return
}

// -----

// allreduce ranks
func.func @allreduce_ranks(%a: tensor<2x4xbf16>) {
  // expected-error@+1 {{'ranks' must be at least 1, got 0}}
  %0 = "mpk.allreduce"(%a) {ranks = 0 : i64} : (tensor<2x4xbf16>) -> tensor<2x4xbf16>
  return
}

// -----

// allgather result: the ranks' x side by side
func.func @allgather_shape(%a: tensor<2x4xbf16>) {
  // expected-error@+1 {{result must be [2, 8] (2 ranks' x side by side), got tensor<2x4xbf16>}}
  %0 = "mpk.allgather"(%a) {ranks = 2 : i64} : (tensor<2x4xbf16>) -> tensor<2x4xbf16>
  return
}

// -----

// allgather ranks attribute
func.func @allgather_no_ranks(%a: tensor<2x4xbf16>) {
  // expected-error@+1 {{attribute "ranks" is expected but not provided}}
  %0 = "mpk.allgather"(%a) : (tensor<2x4xbf16>) -> tensor<2x8xbf16>
  return
}

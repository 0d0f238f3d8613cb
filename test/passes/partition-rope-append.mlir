// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition,mpk-verify)' -split-input-file | filecheck %s

// The QK-norms, ropes and kv_appends feeding an attention become one
// `rope_append` group: one task per sequence and KV head (grid [B, Hkv], tile
// one KV head group of q), writing the roped q and both caches in place. The
// attention reads its q and the caches.

// CHECK-NOT: kind = "rmsnorm"
// CHECK-NOT: kind = "rope"
// CHECK-NOT: kind = "kv_append"
// CHECK: "mpk.tasks"() {grid = array<i64: 2, 2>, inputs = [@wq.out, @wk.out, @wv.out, @layers.0.k_cache, @layers.0.v_cache, @positions, @q_norm.weight, @k_norm.weight], kind = "rope_append", outputs = [@layers.0.rope_append.out, @layers.0.k_cache, @layers.0.v_cache], params = {eps = 9.99999997E-7 : f32, head_dim = 64 : i64, inv_freq = array<f32: {{.*}}>}, sym_name = "layers.0.rope_append", tile = array<i64: 1, 128>}
// CHECK: inputs = [@layers.0.rope_append.out, @layers.0.k_cache, @layers.0.v_cache, @positions], kind = "attention{{(_partial)?}}"
func.func @decode_step(%x: tensor<2x256xbf16>, %pos: tensor<2xi32>) -> tensor<2x256xbf16> {
  %wq = "mpk.weight"() {name = "wq.weight"} : () -> tensor<256x256xbf16>
  %wk = "mpk.weight"() {name = "wk.weight"} : () -> tensor<128x256xbf16>
  %wv = "mpk.weight"() {name = "wv.weight"} : () -> tensor<128x256xbf16>
  %qn = "mpk.weight"() {name = "q_norm.weight"} : () -> tensor<64xbf16>
  %kn = "mpk.weight"() {name = "k_norm.weight"} : () -> tensor<64xbf16>
  %q = "mpk.linear"(%x, %wq) : (tensor<2x256xbf16>, tensor<256x256xbf16>) -> tensor<2x256xbf16>
  %k = "mpk.linear"(%x, %wk) : (tensor<2x256xbf16>, tensor<128x256xbf16>) -> tensor<2x128xbf16>
  %v = "mpk.linear"(%x, %wv) : (tensor<2x256xbf16>, tensor<128x256xbf16>) -> tensor<2x128xbf16>
  %q1 = "mpk.rmsnorm"(%q, %qn) {eps = 1.0e-06 : f32} : (tensor<2x256xbf16>, tensor<64xbf16>) -> tensor<2x256xbf16>
  %k1 = "mpk.rmsnorm"(%k, %kn) {eps = 1.0e-06 : f32} : (tensor<2x128xbf16>, tensor<64xbf16>) -> tensor<2x128xbf16>
  %q2 = "mpk.rope"(%q1, %pos) {inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>} : (tensor<2x256xbf16>, tensor<2xi32>) -> tensor<2x256xbf16>
  %k2 = "mpk.rope"(%k1, %pos) {inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>} : (tensor<2x128xbf16>, tensor<2xi32>) -> tensor<2x128xbf16>
  %kc = "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<2x64x128xbf16>
  %vc = "mpk.state"() {name = "layers.0.v_cache"} : () -> tensor<2x64x128xbf16>
  %kc1 = "mpk.kv_append"(%kc, %k2, %pos) : (tensor<2x64x128xbf16>, tensor<2x128xbf16>, tensor<2xi32>) -> tensor<2x64x128xbf16>
  %vc1 = "mpk.kv_append"(%vc, %v, %pos) : (tensor<2x64x128xbf16>, tensor<2x128xbf16>, tensor<2xi32>) -> tensor<2x64x128xbf16>
  %o = "mpk.attention"(%q2, %kc1, %vc1, %pos) {head_dim = 64 : i64, scale = 0.125 : f32} : (tensor<2x256xbf16>, tensor<2x64x128xbf16>, tensor<2x64x128xbf16>, tensor<2xi32>) -> tensor<2x256xbf16>
  return %o : tensor<2x256xbf16>
}

// -----

// Without QK-norm (Llama): rope and the appends only, no `eps`.
// CHECK-NOT: kind = "rope"
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 2>, inputs = [@wq.out, @wk.out, @wv.out, @layers.0.k_cache, @layers.0.v_cache, @positions], kind = "rope_append"{{.*}}params = {head_dim = 16 : i64, inv_freq = array<f32: {{.*}}>}
// CHECK-NOT: kind = "kv_append"
func.func @decode_step(%x: tensor<1x64xbf16>, %pos: tensor<1xi32>) -> tensor<1x64xbf16> {
  %wq = "mpk.weight"() {name = "wq.weight"} : () -> tensor<64x64xbf16>
  %wk = "mpk.weight"() {name = "wk.weight"} : () -> tensor<32x64xbf16>
  %wv = "mpk.weight"() {name = "wv.weight"} : () -> tensor<32x64xbf16>
  %q = "mpk.linear"(%x, %wq) : (tensor<1x64xbf16>, tensor<64x64xbf16>) -> tensor<1x64xbf16>
  %k = "mpk.linear"(%x, %wk) : (tensor<1x64xbf16>, tensor<32x64xbf16>) -> tensor<1x32xbf16>
  %v = "mpk.linear"(%x, %wv) : (tensor<1x64xbf16>, tensor<32x64xbf16>) -> tensor<1x32xbf16>
  %q2 = "mpk.rope"(%q, %pos) {inv_freq = array<f32: 1.0, 0.1, 0.01, 0.001, 1.0e-4, 1.0e-5, 1.0e-6, 1.0e-7>} : (tensor<1x64xbf16>, tensor<1xi32>) -> tensor<1x64xbf16>
  %k2 = "mpk.rope"(%k, %pos) {inv_freq = array<f32: 1.0, 0.1, 0.01, 0.001, 1.0e-4, 1.0e-5, 1.0e-6, 1.0e-7>} : (tensor<1x32xbf16>, tensor<1xi32>) -> tensor<1x32xbf16>
  %kc = "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<1x64x32xbf16>
  %vc = "mpk.state"() {name = "layers.0.v_cache"} : () -> tensor<1x64x32xbf16>
  %kc1 = "mpk.kv_append"(%kc, %k2, %pos) : (tensor<1x64x32xbf16>, tensor<1x32xbf16>, tensor<1xi32>) -> tensor<1x64x32xbf16>
  %vc1 = "mpk.kv_append"(%vc, %v, %pos) : (tensor<1x64x32xbf16>, tensor<1x32xbf16>, tensor<1xi32>) -> tensor<1x64x32xbf16>
  %o = "mpk.attention"(%q2, %kc1, %vc1, %pos) {head_dim = 16 : i64, scale = 0.25 : f32} : (tensor<1x64xbf16>, tensor<1x64x32xbf16>, tensor<1x64x32xbf16>, tensor<1xi32>) -> tensor<1x64xbf16>
  return %o : tensor<1x64xbf16>
}

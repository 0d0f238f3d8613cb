// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-rope-append,mpk-verify)' | mpk-opt | filecheck %s

// The QK-norms, ropes and kv_appends feeding an attention become one rope_append op
// with three results (q, the two caches), which the attention reads.
// CHECK-LABEL: func.func @decode_step
// CHECK-NOT: "mpk.rope"
// CHECK-NOT: "mpk.kv_append"
// CHECK: %[[R:.*]]:3 = "mpk.rope_append"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %arg1, %{{.*}}, %{{.*}}) {eps = 9.99999997E-7 : f32, head_dim = 64 : i64, inv_freq = array<f32: 1.000000e+00, 5.000000e-01{{.*}}>}
// CHECK: "mpk.attention"(%[[R]]#0, %[[R]]#1, %[[R]]#2, %arg1) {head_dim = 64 : i64, scale = 1.250000e-01 : f32}
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

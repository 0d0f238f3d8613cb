// RUN: mpk-opt %s -split-input-file --pass-pipeline='builtin.module(mpk-fuse-norm,mpk-verify)' \
// RUN:   | mpk-opt -split-input-file | filecheck %s
// RUN: mpk-opt %s -split-input-file --pass-pipeline='builtin.module(mpk-fuse-norm,mpk-partition)' \
// RUN:   | filecheck %s --check-prefix=TASKS

// A layer norm that only linears read as x is marked to be computed by them;
// mpk-partition gives them its weight as an input and `norm_eps`, and it no group.
// CHECK-LABEL: func.func @qkv
// CHECK: "mpk.rmsnorm"(%arg0, %{{.*}}) {eps = 9.99999997E-7 : f32, mpk.in_users}
// TASKS-NOT: kind = "rmsnorm"
// TASKS: inputs = [@input0, @q_proj.weight, @norm.weight], kind = "linear", outputs = [@logits], params = {norm_eps = 9.99999997E-7 : f32}
// TASKS: inputs = [@input0, @k_proj.weight, @norm.weight], kind = "linear", outputs = [@logits.2], params = {norm_eps = 9.99999997E-7 : f32}
func.func @qkv(%x: tensor<1x256xbf16>) -> (tensor<1x256xbf16>, tensor<1x128xbf16>) {
  %n = "mpk.weight"() {name = "norm.weight"} : () -> tensor<256xbf16>
  %wq = "mpk.weight"() {name = "q_proj.weight"} : () -> tensor<256x256xbf16>
  %wk = "mpk.weight"() {name = "k_proj.weight"} : () -> tensor<128x256xbf16>
  %h = "mpk.rmsnorm"(%x, %n) {eps = 1.0e-06 : f32} : (tensor<1x256xbf16>, tensor<256xbf16>) -> tensor<1x256xbf16>
  %q = "mpk.linear"(%h, %wq) : (tensor<1x256xbf16>, tensor<256x256xbf16>) -> tensor<1x256xbf16>
  %k = "mpk.linear"(%h, %wk) : (tensor<1x256xbf16>, tensor<128x256xbf16>) -> tensor<1x128xbf16>
  return %q, %k : tensor<1x256xbf16>, tensor<1x128xbf16>
}

// -----

// Not a norm per head (QK-norm), one with another user, nor one at GEMM rows.
// CHECK-LABEL: func.func @kept
// CHECK-NOT: mpk.in_users
func.func @kept(%x: tensor<1x256xbf16>, %big: tensor<64x256xbf16>) -> (tensor<1x256xbf16>, tensor<1x256xbf16>, tensor<64x256xbf16>) {
  %hn = "mpk.weight"() {name = "q_norm.weight"} : () -> tensor<64xbf16>
  %n = "mpk.weight"() {name = "norm.weight"} : () -> tensor<256xbf16>
  %wq = "mpk.weight"() {name = "q_proj.weight"} : () -> tensor<256x256xbf16>
  %a = "mpk.rmsnorm"(%x, %hn) {eps = 1.0e-06 : f32} : (tensor<1x256xbf16>, tensor<64xbf16>) -> tensor<1x256xbf16>
  %h = "mpk.rmsnorm"(%x, %n) {eps = 1.0e-06 : f32} : (tensor<1x256xbf16>, tensor<256xbf16>) -> tensor<1x256xbf16>
  %q = "mpk.linear"(%h, %wq) : (tensor<1x256xbf16>, tensor<256x256xbf16>) -> tensor<1x256xbf16>
  %s = "mpk.add"(%q, %h) : (tensor<1x256xbf16>, tensor<1x256xbf16>) -> tensor<1x256xbf16>
  %g = "mpk.rmsnorm"(%big, %n) {eps = 1.0e-06 : f32} : (tensor<64x256xbf16>, tensor<256xbf16>) -> tensor<64x256xbf16>
  %gq = "mpk.linear"(%g, %wq) : (tensor<64x256xbf16>, tensor<256x256xbf16>) -> tensor<64x256xbf16>
  return %a, %s, %gq : tensor<1x256xbf16>, tensor<1x256xbf16>, tensor<64x256xbf16>
}

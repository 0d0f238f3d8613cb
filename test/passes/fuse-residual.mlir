// RUN: mpk-opt %s -split-input-file --pass-pipeline='builtin.module(mpk-fuse-residual,mpk-verify)' | filecheck %s

// The residual stream's add folds into the projection that feeds it, either operand order.
// CHECK-LABEL: func.func @block
// CHECK: %[[O:.*]] = "mpk.linear"(%arg1, %{{.*}}, %arg0) {mpk.tile = array<i64: 2, 16>}
// CHECK: %[[D:.*]] = "mpk.linear"(%{{.*}}, %{{.*}}, %[[O]])
// CHECK-NOT: "mpk.add"
// CHECK: return %[[D]]
func.func @block(%x: tensor<2x64xbf16>, %a: tensor<2x64xbf16>) -> tensor<2x64xbf16> {
  %wo = "mpk.weight"() {name = "o"} : () -> tensor<64x64xbf16>
  %o = "mpk.linear"(%a, %wo) {mpk.tile = array<i64: 2, 16>} : (tensor<2x64xbf16>, tensor<64x64xbf16>) -> tensor<2x64xbf16>
  %h = "mpk.add"(%x, %o) : (tensor<2x64xbf16>, tensor<2x64xbf16>) -> tensor<2x64xbf16>
  %wd = "mpk.weight"() {name = "d"} : () -> tensor<64x64xbf16>
  %d = "mpk.linear"(%h, %wd) : (tensor<2x64xbf16>, tensor<64x64xbf16>) -> tensor<2x64xbf16>
  %y = "mpk.add"(%d, %h) : (tensor<2x64xbf16>, tensor<2x64xbf16>) -> tensor<2x64xbf16>
  return %y : tensor<2x64xbf16>
}

// -----

// A linear with other users, or one that already has a residual, stays.
// CHECK-LABEL: func.func @kept
// CHECK: "mpk.add"
func.func @kept(%x: tensor<2x64xbf16>) -> (tensor<2x64xbf16>, tensor<2x64xbf16>) {
  %w = "mpk.weight"() {name = "w"} : () -> tensor<64x64xbf16>
  %y = "mpk.linear"(%x, %w) : (tensor<2x64xbf16>, tensor<64x64xbf16>) -> tensor<2x64xbf16>
  %z = "mpk.add"(%x, %y) : (tensor<2x64xbf16>, tensor<2x64xbf16>) -> tensor<2x64xbf16>
  return %y, %z : tensor<2x64xbf16>, tensor<2x64xbf16>
}

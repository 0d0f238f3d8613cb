// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-silu,mpk-verify)' | mpk-opt | filecheck %s
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-silu,mpk-partition)' -split-input-file 2>&1 \
// RUN:   | filecheck %s --check-prefix=BAD

// A silu_mul that only linears read as x is marked to be computed by them (down_proj's x).
// CHECK-LABEL: func.func @down
// CHECK: "mpk.silu_mul"(%arg0, %arg1) {mpk.in_users}
func.func @down(%g: tensor<1x512xbf16>, %u: tensor<1x512xbf16>) -> tensor<1x256xbf16> {
  %wd = "mpk.weight"() {name = "down_proj.weight"} : () -> tensor<256x512xbf16>
  %a = "mpk.silu_mul"(%g, %u) : (tensor<1x512xbf16>, tensor<1x512xbf16>) -> tensor<1x512xbf16>
  %d = "mpk.linear"(%a, %wd) : (tensor<1x512xbf16>, tensor<256x512xbf16>) -> tensor<1x256xbf16>
  return %d : tensor<1x256xbf16>
}

// -----

// A hand-written mark on a silu_mul that something else reads is refused, located.
// BAD: fuse-silu.mlir:[[# @LINE + 3]]:8: error: 'mpk.in_users' needs an rmsnorm or silu_mul whose every user reads it as x (mpk.linear)
func.func @wrong(%g: tensor<1x512xbf16>, %u: tensor<1x512xbf16>) -> tensor<1x512xbf16> {
  %wd = "mpk.weight"() {name = "down_proj.weight"} : () -> tensor<256x512xbf16>
  %a = "mpk.silu_mul"(%g, %u) {mpk.in_users} : (tensor<1x512xbf16>, tensor<1x512xbf16>) -> tensor<1x512xbf16>
  %s = "mpk.add"(%a, %u) : (tensor<1x512xbf16>, tensor<1x512xbf16>) -> tensor<1x512xbf16>
  return %s : tensor<1x512xbf16>
}

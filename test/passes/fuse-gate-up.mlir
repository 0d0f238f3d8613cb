// RUN: mpk-opt %s -split-input-file --pass-pipeline='builtin.module(mpk-fuse-gate-up,mpk-verify)' \
// RUN:   | mpk-opt -split-input-file | filecheck %s
// RUN: mpk-opt %s -split-input-file --pass-pipeline='builtin.module(mpk-fuse-gate-up{decode=false})' \
// RUN:   | filecheck %s --check-prefix=NODECODE

// An MLP's gate and up linears and their silu_mul become one gate_up op (decode rows too).
// CHECK-LABEL: func.func @mlp
// CHECK: %[[A:.*]] = "mpk.gate_up"(%arg0, %{{.*}}, %{{.*}}) : (tensor<1x256xbf16>, tensor<512x256xbf16>, tensor<512x256xbf16>) -> tensor<1x512xbf16>
// CHECK-NOT: "mpk.silu_mul"
// CHECK: "mpk.linear"(%[[A]], %{{.*}})
// NODECODE-LABEL: func.func @mlp
// NODECODE: "mpk.silu_mul"
// NODECODE-NOT: "mpk.gate_up"
func.func @mlp(%x: tensor<1x256xbf16>) -> tensor<1x256xbf16> {
  %wg = "mpk.weight"() {name = "gate_proj.weight"} : () -> tensor<512x256xbf16>
  %wu = "mpk.weight"() {name = "up_proj.weight"} : () -> tensor<512x256xbf16>
  %wd = "mpk.weight"() {name = "down_proj.weight"} : () -> tensor<256x512xbf16>
  %g = "mpk.linear"(%x, %wg) : (tensor<1x256xbf16>, tensor<512x256xbf16>) -> tensor<1x512xbf16>
  %u = "mpk.linear"(%x, %wu) : (tensor<1x256xbf16>, tensor<512x256xbf16>) -> tensor<1x512xbf16>
  %a = "mpk.silu_mul"(%g, %u) : (tensor<1x512xbf16>, tensor<1x512xbf16>) -> tensor<1x512xbf16>
  %d = "mpk.linear"(%a, %wd) : (tensor<1x512xbf16>, tensor<256x512xbf16>) -> tensor<1x256xbf16>
  return %d : tensor<1x256xbf16>
}

// -----

// Not when a product has another user, the two read different x, or one has an mpk.tile.
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-2: "mpk.silu_mul"
// CHECK-NOT: "mpk.gate_up"
func.func @kept(%x: tensor<1x256xbf16>, %y: tensor<1x256xbf16>) -> (tensor<1x512xbf16>, tensor<1x512xbf16>, tensor<1x512xbf16>) {
  %wg = "mpk.weight"() {name = "gate_proj.weight"} : () -> tensor<512x256xbf16>
  %wu = "mpk.weight"() {name = "up_proj.weight"} : () -> tensor<512x256xbf16>
  %g = "mpk.linear"(%x, %wg) : (tensor<1x256xbf16>, tensor<512x256xbf16>) -> tensor<1x512xbf16>
  %u = "mpk.linear"(%y, %wu) : (tensor<1x256xbf16>, tensor<512x256xbf16>) -> tensor<1x512xbf16>
  %a = "mpk.silu_mul"(%g, %u) : (tensor<1x512xbf16>, tensor<1x512xbf16>) -> tensor<1x512xbf16>
  %g2 = "mpk.linear"(%x, %wg) {mpk.tile = array<i64: 1, 64>} : (tensor<1x256xbf16>, tensor<512x256xbf16>) -> tensor<1x512xbf16>
  %u2 = "mpk.linear"(%x, %wu) : (tensor<1x256xbf16>, tensor<512x256xbf16>) -> tensor<1x512xbf16>
  %b = "mpk.silu_mul"(%g2, %u2) : (tensor<1x512xbf16>, tensor<1x512xbf16>) -> tensor<1x512xbf16>
  return %a, %b, %u2 : tensor<1x512xbf16>, tensor<1x512xbf16>, tensor<1x512xbf16>
}

// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-residual,mpk-fuse-gate-up{decode=false},mpk-fuse-silu,mpk-partition,mpk-verify)' \
// RUN:   | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition,mpk-verify)' \
// RUN:   | filecheck %s --check-prefix=GATEUP

// By default (`mpk-fuse-gate-up{decode}`) the gate and up linears and their silu_mul
// are one gate_up group, which down_proj reads as x.
// GATEUP-NOT: kind = "silu_mul"
// GATEUP: "mpk.tasks"() {grid = array<i64: 1, 128>, inputs = [@input0, @gate_proj.weight, @up_proj.weight], kind = "gate_up", outputs = [@gate_up.out], params = {}, sym_name = "gate_up", tile = array<i64: 1, 24>}
// GATEUP: "mpk.tasks"() {{{.*}}inputs = [@gate_up.out, @down_proj.weight, @input0], kind = "linear"

// Without it, a silu_mul read only by a linear (down_proj) becomes part of it: the linear
// reads the gate as x, up as its last input (after the fused residual) and
// has `silu_gate`; no silu_mul group is left (partition-fuse-silu-mul-large:
// with a larger x it stays).

// CHECK-NOT: kind = "silu_mul"
// CHECK: "mpk.tasks"() {{{.*}}inputs = [@gate_proj.out, @down_proj.weight, @input0, @up_proj.out], kind = "linear"{{.*}}params = {silu_gate}
// CHECK-NOT: kind = "silu_mul"
func.func @decode_step(%x: tensor<1x1024xbf16>) -> tensor<1x1024xbf16> {
  %wg = "mpk.weight"() {name = "gate_proj.weight"} : () -> tensor<3072x1024xbf16>
  %wu = "mpk.weight"() {name = "up_proj.weight"} : () -> tensor<3072x1024xbf16>
  %wd = "mpk.weight"() {name = "down_proj.weight"} : () -> tensor<1024x3072xbf16>
  %g = "mpk.linear"(%x, %wg) : (tensor<1x1024xbf16>, tensor<3072x1024xbf16>) -> tensor<1x3072xbf16>
  %u = "mpk.linear"(%x, %wu) : (tensor<1x1024xbf16>, tensor<3072x1024xbf16>) -> tensor<1x3072xbf16>
  %a = "mpk.silu_mul"(%g, %u) : (tensor<1x3072xbf16>, tensor<1x3072xbf16>) -> tensor<1x3072xbf16>
  %d = "mpk.linear"(%a, %wd) : (tensor<1x3072xbf16>, tensor<1024x3072xbf16>) -> tensor<1x1024xbf16>
  %h = "mpk.add"(%d, %x) : (tensor<1x1024xbf16>, tensor<1x1024xbf16>) -> tensor<1x1024xbf16>
  return %h : tensor<1x1024xbf16>
}

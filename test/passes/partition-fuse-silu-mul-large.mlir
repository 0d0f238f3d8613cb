// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition,mpk-verify)' | filecheck %s

// At batch 8, x of the down projection (8 x 3072 bf16 = 48 KiB) is over the
// 8 KiB up to which staging gate and up in every task beats a hop of its own
// (mpk_partition.FUSED_X_MAX_BYTES): the silu_mul stays a group.

// CHECK: kind = "silu_mul"
// CHECK: "mpk.tasks"() {{{.*}}inputs = [@input0.silu_mul.out, @down_proj.weight], kind = "linear"{{.*}}params = {}
func.func @decode_step(%g: tensor<8x3072xbf16>, %u: tensor<8x3072xbf16>) -> tensor<8x1024xbf16> {
  %wd = "mpk.weight"() {name = "down_proj.weight"} : () -> tensor<1024x3072xbf16>
  %a = "mpk.silu_mul"(%g, %u) : (tensor<8x3072xbf16>, tensor<8x3072xbf16>) -> tensor<8x3072xbf16>
  %d = "mpk.linear"(%a, %wd) : (tensor<8x3072xbf16>, tensor<1024x3072xbf16>) -> tensor<8x1024xbf16>
  return %d : tensor<8x1024xbf16>
}

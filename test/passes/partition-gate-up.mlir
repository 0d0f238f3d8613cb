// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition,mpk-verify)' | filecheck %s

// Prefill rows (GEMM tiles): an MLP's gate and up linears and their silu_mul become
// one `gate_up` group reading x and both weights, tiles of 128 rows and at most 128
// columns; the down projection reads its output.
// CHECK-NOT: kind = "silu_mul"
// CHECK: "mpk.tasks"() {grid = array<i64: 2, {{[0-9]+}}>, inputs = [@input0, @mlp.gate_proj.weight, @mlp.up_proj.weight], kind = "gate_up", outputs = [@mlp.gate_up.out], params = {}, sym_name = "mlp.gate_up", tile = array<i64: 128, {{64|128}}>}
// CHECK: inputs = [@mlp.gate_up.out, @mlp.down_proj.weight], kind = "linear"
func.func @prefill_step(%x: tensor<256x64xbf16>) -> tensor<256x64xbf16> {
  %wg = "mpk.weight"() {name = "mlp.gate_proj.weight"} : () -> tensor<192x64xbf16>
  %wu = "mpk.weight"() {name = "mlp.up_proj.weight"} : () -> tensor<192x64xbf16>
  %wd = "mpk.weight"() {name = "mlp.down_proj.weight"} : () -> tensor<64x192xbf16>
  %g = "mpk.linear"(%x, %wg) : (tensor<256x64xbf16>, tensor<192x64xbf16>) -> tensor<256x192xbf16>
  %u = "mpk.linear"(%x, %wu) : (tensor<256x64xbf16>, tensor<192x64xbf16>) -> tensor<256x192xbf16>
  %s = "mpk.silu_mul"(%g, %u) : (tensor<256x192xbf16>, tensor<256x192xbf16>) -> tensor<256x192xbf16>
  %d = "mpk.linear"(%s, %wd) : (tensor<256x192xbf16>, tensor<64x192xbf16>) -> tensor<256x64xbf16>
  return %d : tensor<256x64xbf16>
}

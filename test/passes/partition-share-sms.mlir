// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-verify)' | filecheck %s

// Linears that read the same x run side by side (q, k and v): each tile is
// chosen for the share of the 132 SMs its weight bytes are of theirs (88, 22
// and 22 here), in whole rounds of 16 rows, so that the three fill one wave
// (86 + 22 + 22 tasks) instead of a wave each. A linear alone (o) has all
// the SMs.

// CHECK: "mpk.tasks"() {grid = array<i64: 1, 86>, inputs = [@input0, @wq.weight], kind = "linear"{{.*}}tile = array<i64: 1, 48>}
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 22>, inputs = [@input0, @wk.weight], kind = "linear"{{.*}}tile = array<i64: 1, 48>}
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 22>, inputs = [@input0, @wv.weight], kind = "linear"{{.*}}tile = array<i64: 1, 48>}
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 128>, inputs = [@wq.out, @wo.weight], kind = "linear"{{.*}}tile = array<i64: 1, 32>}
func.func @decode_step(%x: tensor<1x4096xbf16>) -> (tensor<1x1024xbf16>, tensor<1x1024xbf16>, tensor<1x4096xbf16>) {
  %wq = "mpk.weight"() {name = "wq.weight"} : () -> tensor<4096x4096xbf16>
  %wk = "mpk.weight"() {name = "wk.weight"} : () -> tensor<1024x4096xbf16>
  %wv = "mpk.weight"() {name = "wv.weight"} : () -> tensor<1024x4096xbf16>
  %wo = "mpk.weight"() {name = "wo.weight"} : () -> tensor<4096x4096xbf16>
  %q = "mpk.linear"(%x, %wq) : (tensor<1x4096xbf16>, tensor<4096x4096xbf16>) -> tensor<1x4096xbf16>
  %k = "mpk.linear"(%x, %wk) : (tensor<1x4096xbf16>, tensor<1024x4096xbf16>) -> tensor<1x1024xbf16>
  %v = "mpk.linear"(%x, %wv) : (tensor<1x4096xbf16>, tensor<1024x4096xbf16>) -> tensor<1x1024xbf16>
  %o = "mpk.linear"(%q, %wo) : (tensor<1x4096xbf16>, tensor<4096x4096xbf16>) -> tensor<1x4096xbf16>
  return %k, %v, %o : tensor<1x1024xbf16>, tensor<1x1024xbf16>, tensor<1x4096xbf16>
}

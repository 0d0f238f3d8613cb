// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition)' -split-input-file --verify-diagnostics | filecheck %s

// The cost model splits a 4096x4096 GEMV into about one task per SM; the
// elementwise op that follows takes the producers' tile; an `mpk.tile`
// attribute overrides the choice.

// CHECK: "mpk.kernel"() {arch = "sm_90", num_sms = 132 : i64, sym_name = "decode_step"}
// CHECK: "mpk.buffer"() {space = "io", sym_name = "tokens", type = tensor<1xi32>}
// CHECK: "mpk.buffer"() {name = "w.gate.weight", space = "weight", sym_name = "w.gate.weight"
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 128>, {{.*}}kind = "linear"{{.*}}sym_name = "w.gate", tile = array<i64: 1, 32>}
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 16>, {{.*}}kind = "linear"{{.*}}sym_name = "w.up", tile = array<i64: 1, 256>}
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 128>, inputs = [@w.gate.out, @w.up.out], kind = "silu_mul"{{.*}}tile = array<i64: 1, 32>}
// CHECK-NOT: func.func
func.func @decode_step(%ids: tensor<1xi32>) -> tensor<1x4096xbf16> {
  %table = "mpk.weight"() {name = "embed.weight"} : () -> tensor<1000x4096xbf16>
  %h = "mpk.embedding"(%ids, %table) : (tensor<1xi32>, tensor<1000x4096xbf16>) -> tensor<1x4096xbf16>
  %wg = "mpk.weight"() {name = "w.gate.weight"} : () -> tensor<4096x4096xbf16>
  %wu = "mpk.weight"() {name = "w.up.weight"} : () -> tensor<4096x4096xbf16>
  %g = "mpk.linear"(%h, %wg) : (tensor<1x4096xbf16>, tensor<4096x4096xbf16>) -> tensor<1x4096xbf16>
  %u = "mpk.linear"(%h, %wu) {mpk.tile = array<i64: 1, 256>} : (tensor<1x4096xbf16>, tensor<4096x4096xbf16>) -> tensor<1x4096xbf16>
  %y = "mpk.silu_mul"(%g, %u) : (tensor<1x4096xbf16>, tensor<1x4096xbf16>) -> tensor<1x4096xbf16>
  return %y : tensor<1x4096xbf16>
}

// -----

func.func @decode_step(%x: tensor<1x64xf32>) -> tensor<1x64xf32> {
  %w = "mpk.weight"() {name = "w"} : () -> tensor<64x64xf32>
  // expected-error @+1 {{invalid 'mpk.tile' [1, 12]: tile size 12 in dim 1 must be a multiple of 8 or the whole dim 64}}
  %y = "mpk.linear"(%x, %w) {mpk.tile = array<i64: 1, 12>} : (tensor<1x64xf32>, tensor<64x64xf32>) -> tensor<1x64xf32>
  return %y : tensor<1x64xf32>
}

// -----

func.func @decode_step(%x: tensor<2x64xf32>, %pos: tensor<2xi32>) -> tensor<2x64xf32> {
  %kc = "mpk.state"() {name = "kc"} : () -> tensor<2x8x32xf32>
  %vc = "mpk.state"() {name = "vc"} : () -> tensor<2x8x32xf32>
  // expected-error @+1 {{invalid 'mpk.tile' [2, 32]: 'attention' tasks need tile size 1 in dim 0, got 2}}
  %o = "mpk.attention"(%x, %kc, %vc, %pos) {head_dim = 16 : i64, scale = 0.25 : f32, mpk.tile = array<i64: 2, 32>} : (tensor<2x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2xi32>) -> tensor<2x64xf32>
  return %o : tensor<2x64xf32>
}

// -----

// `mpk.splits` on a sample must be a positive integer.
func.func @decode_step(%logits: tensor<1x64xf32>, %pos: tensor<1xi32>, %params: tensor<1x4xf32>, %seeds: tensor<1xi32>) -> tensor<1xi32> {
  // expected-error @+1 {{'mpk.splits' must be a positive integer}}
  %t = "mpk.sample"(%logits, %pos, %params, %seeds) {mpk.splits = 0} : (tensor<1x64xf32>, tensor<1xi32>, tensor<1x4xf32>, tensor<1xi32>) -> tensor<1xi32>
  return %t : tensor<1xi32>
}

// -----

// Splits of 8 columns (16-byte vectors) of 10 logits: a third would get none.
func.func @decode_step(%logits: tensor<1x10xf32>, %pos: tensor<1xi32>, %params: tensor<1x4xf32>, %seeds: tensor<1xi32>) -> tensor<1xi32> {
  // expected-error @+1 {{invalid 'mpk.splits': 3 splits of 10 logits leave the last without columns (splits of 8)}}
  %t = "mpk.sample"(%logits, %pos, %params, %seeds) {mpk.splits = 3} : (tensor<1x10xf32>, tensor<1xi32>, tensor<1x4xf32>, tensor<1xi32>) -> tensor<1xi32>
  return %t : tensor<1xi32>
}

// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false})' -split-input-file | filecheck %s

// Tiles that do not line up (24-column producer tiles, 16-column consumer
// tiles) give counters with 1 or 2 triggers; one `triggers` per event cannot
// say that, so that event falls back to one counter over all 3 producers.

// CHECK: "mpk.event"() {size = 1 : i64, sym_name = "ready.g.silu_mul", triggers = 6 : i64}
// CHECK: sym_name = "g.silu_mul", tile = array<i64: 1, 16>, trigger = [@step, #map], wait = [@ready.g.silu_mul, #map]}
func.func @decode_step(%x: tensor<1x64xf32>) -> tensor<1x64xf32> {
  %wg = "mpk.weight"() {name = "g.weight"} : () -> tensor<64x64xf32>
  %wu = "mpk.weight"() {name = "u.weight"} : () -> tensor<64x64xf32>
  %g = "mpk.linear"(%x, %wg) {mpk.tile = array<i64: 1, 24>} : (tensor<1x64xf32>, tensor<64x64xf32>) -> tensor<1x64xf32>
  %u = "mpk.linear"(%x, %wu) {mpk.tile = array<i64: 1, 24>} : (tensor<1x64xf32>, tensor<64x64xf32>) -> tensor<1x64xf32>
  %y = "mpk.silu_mul"(%g, %u) {mpk.tile = array<i64: 1, 16>} : (tensor<1x64xf32>, tensor<1x64xf32>) -> tensor<1x64xf32>
  return %y : tensor<1x64xf32>
}

// -----

// A consumer tile twice the producer tile: each counter has 2 triggers, the
// maps are `d1 floordiv 2` on the producer side and `d1` on the consumer side.

// CHECK: // -----
// CHECK: [[HALF:#map[0-9]*]] = affine_map<(d0, d1) -> (d1 floordiv 2)>
// CHECK: [[ID:#map[0-9]*]] = affine_map<(d0, d1) -> (d1)>
// CHECK: "mpk.event"() {size = 4 : i64, sym_name = "ready.g.rope", triggers = 2 : i64}
// CHECK: sym_name = "g", tile = array<i64: 1, 8>, trigger = [@ready.g.rope, [[HALF]]]
// CHECK: sym_name = "g.rope", tile = array<i64: 1, 16>, trigger = [@step, #{{.*}}], wait = [@ready.g.rope, [[ID]]]}
func.func @decode_step(%x: tensor<1x64xf32>, %pos: tensor<1xi32>) -> tensor<1x64xf32> {
  %wg = "mpk.weight"() {name = "g.weight"} : () -> tensor<64x64xf32>
  %g = "mpk.linear"(%x, %wg) {mpk.tile = array<i64: 1, 8>} : (tensor<1x64xf32>, tensor<64x64xf32>) -> tensor<1x64xf32>
  %r = "mpk.rope"(%g, %pos) {inv_freq = array<f32: 1.0, 0.1, 0.01, 0.001, 0.0001, 0.00001, 0.000001, 0.0000001>} : (tensor<1x64xf32>, tensor<1xi32>) -> tensor<1x64xf32>
  return %r : tensor<1x64xf32>
}

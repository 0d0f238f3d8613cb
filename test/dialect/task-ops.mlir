// Every task-level op round-trips, in pretty and generic form, and verifies.
// RUN: mpk-opt %s | mpk-opt | filecheck %s
// RUN: mpk-opt %s --mlir-print-op-generic | mpk-opt | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-verify)' | filecheck %s

// CHECK: #[[DIV2:.+]] = affine_map<(d0, d1) -> (d1 floordiv 2)>
// CHECK: #[[ZERO:.+]] = affine_map<(d0, d1) -> (0)>
// CHECK: #[[ID:.+]] = affine_map<(d0, d1) -> (d1)>
// CHECK: "mpk.kernel"() {arch = "sm_90", num_sms = 4 : i64, sym_name = "decode"}
"mpk.kernel"() {sym_name = "decode", num_sms = 4 : i64, arch = "sm_90"} : () -> ()
// CHECK: "mpk.buffer"() {offset = 0 : i64, space = "workspace", sym_name = "x", type = tensor<1x64xbf16>}
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace", offset = 128 : i64} : () -> ()
// CHECK: "mpk.buffer"() {name = "w.up", space = "weight", sym_name = "w", type = tensor<64x64xbf16>}
"mpk.buffer"() {sym_name = "w", type = tensor<64x64xbf16>, space = "weight", name = "w.up"} : () -> ()
"mpk.buffer"() {sym_name = "z", type = tensor<1x64xbf16>, space = "io", per_step} : () -> ()
// CHECK: "mpk.event"() {size = 2 : i64, sym_name = "e0", triggers = 2 : i64}
"mpk.event"() {sym_name = "e0", size = 2 : i64, triggers = 2 : i64} : () -> ()
// CHECK: "mpk.event"() {primed, size = 1 : i64, sym_name = "loop", triggers = 2 : i64}
"mpk.event"() {sym_name = "loop", size = 1 : i64, triggers = 2 : i64, primed} : () -> ()
// The linear's 4 tiles of 16 columns feed the add's 2 tiles of 32: two per event.
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 4>, inputs = [@x, @w], kind = "linear", outputs = [@y], params = {}, sym_name = "up", tile = array<i64: 1, 16>, trigger = [@e0, #[[DIV2]]], wait = [@loop, #[[ZERO]]]}
"mpk.tasks"() {sym_name = "up", kind = "linear", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>,
               inputs = [@x, @w], outputs = [@y], params = {},
               wait = [@loop, affine_map<(d0, d1) -> (0)>],
               trigger = [@e0, affine_map<(d0, d1) -> (d1 floordiv 2)>]} : () -> ()
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 2>, inputs = [@y, @x], kind = "add", outputs = [@z], sym_name = "sum", tile = array<i64: 1, 32>, trigger = [@loop, #[[ZERO]]], wait = [@e0, #[[ID]]]}
"mpk.tasks"() {sym_name = "sum", kind = "add", grid = array<i64: 1, 2>, tile = array<i64: 1, 32>,
               inputs = [@y, @x], outputs = [@z],
               wait = [@e0, affine_map<(d0, d1) -> (d1)>],
               trigger = [@loop, affine_map<(d0, d1) -> (0)>]} : () -> ()
// CHECK: "mpk.schedule"() {queues = [array<i32: 0, 4>, array<i32: 1, 5>, array<i32: 2>, array<i32: 3>]}
"mpk.schedule"() {queues = [array<i32: 0, 4>, array<i32: 1, 5>, array<i32: 2>, array<i32: 3>]} : () -> ()

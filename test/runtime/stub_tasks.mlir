// Scheduled task IR for the stub dispatch (stub_dispatch.mlir): eight
// "produce" tasks fill `a`, four "consume" tasks sum it into this step's
// copy of `b` and prime the next step's producers.
"mpk.kernel"() {sym_name = "stub", num_sms = 132 : i64, arch = "sm_90", steps = 3 : i64} : () -> ()
"mpk.buffer"() {sym_name = "a", type = tensor<8xi32>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "b", type = tensor<4xi32>, space = "io", name = "b", per_step} : () -> ()
"mpk.event"() {sym_name = "a_ready", size = 1 : i64, triggers = 8 : i64} : () -> ()
"mpk.event"() {sym_name = "step_done", size = 1 : i64, triggers = 4 : i64, primed} : () -> ()
"mpk.tasks"() {sym_name = "produce", kind = "produce", grid = array<i64: 8>, tile = array<i64: 1>,
               inputs = [], outputs = [@a],
               wait = [@step_done, affine_map<(d0) -> (0)>], trigger = [@a_ready, affine_map<(d0) -> (0)>],
               params = {}} : () -> ()
"mpk.tasks"() {sym_name = "consume", kind = "consume", grid = array<i64: 4>, tile = array<i64: 1>,
               domain = array<i64: 4>, inputs = [@a], outputs = [@b],
               wait = [@a_ready, affine_map<(d0) -> (0)>], trigger = [@step_done, affine_map<(d0) -> (0)>],
               params = {}} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0, 4, 8>, array<i32: 1, 5, 9>, array<i32: 2, 6, 10>, array<i32: 3, 7, 11>]} : () -> ()

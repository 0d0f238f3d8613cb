// mpk-materialize writes the runtime's tables; the module itself is unchanged.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-materialize{output=%t.npz})' | filecheck %s --check-prefix=IR
// RUN: %python -c "import numpy as np; t = np.load('%t.npz'); [print(k, t[k].tolist()) for k in t.files]" | filecheck %s

// IR: "mpk.schedule"
// CHECK: tasks [[0, 0, 0, 0, -1, 0, 0, 0], [0, 1, 0, 0, -1, 0, 1, 0], [1, 0, 1, 3, 0, 1, -1, 0]]
// CHECK: queue_offsets [0, 2, 3]
// CHECK: queue_tasks [0, 2, 1]
// CHECK: event_triggers [1, 1]
// CHECK: event_initial [0, 0]
// CHECK: group_buffers [0, 0, 1, 1, 1, 2]
// CHECK: group_buffer_offsets [0, 3, 6]

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xf32>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xf32>, space = "workspace", offset = 256 : i64} : () -> ()
"mpk.buffer"() {sym_name = "z", type = tensor<1x64xf32>, space = "workspace", offset = 512 : i64} : () -> ()
"mpk.event"() {sym_name = "y_ready", size = 2 : i64, triggers = 1 : i64} : () -> ()
"mpk.tasks"() {sym_name = "first", kind = "add", grid = array<i64: 1, 2>, tile = array<i64: 1, 32>,
               inputs = [@x, @x], outputs = [@y], trigger = [@y_ready, affine_map<(d0, d1) -> (d1)>], params = {}} : () -> ()
"mpk.tasks"() {sym_name = "second", kind = "add", grid = array<i64: 1, 1>, tile = array<i64: 1, 64>,
               inputs = [@y, @y], outputs = [@z], wait = [@y_ready, affine_map<(d0, d1) -> (0)>], params = {}} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0, 2>, array<i32: 1>]} : () -> ()

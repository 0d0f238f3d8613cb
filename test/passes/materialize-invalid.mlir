// Errors of mpk-materialize, at the op that is not ready for the runtime.
// RUN: mpk-opt %s -split-input-file -verify-diagnostics --pass-pipeline='builtin.module(mpk-materialize)'

// expected-error@+1 {{no mpk.schedule: run mpk-schedule first}}
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xf32>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xf32>, space = "workspace", offset = 256 : i64} : () -> ()
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 1>, tile = array<i64: 1, 64>,
               inputs = [@x, @x], outputs = [@y], params = {}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xf32>, space = "workspace", offset = 0 : i64} : () -> ()
// expected-error@+1 {{workspace buffer 'y' has no offset: run mpk-plan-memory first}}
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xf32>, space = "workspace"} : () -> ()
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 1>, tile = array<i64: 1, 64>,
               inputs = [@x, @x], outputs = [@y], params = {}} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0>]} : () -> ()

// -----

// A group marked staged_weights (mpk-stage-weights) whose tiles of w are not
// 16-byte aligned ranges cannot be copied into the weight ring.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x3xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<10x3xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x10xbf16>, space = "workspace", offset = 256 : i64} : () -> ()
// expected-error@+1 {{group 't' is marked staged_weights but some task's weight rows are not one aligned range of each of its weights}}
"mpk.tasks"() {sym_name = "t", kind = "linear", grid = array<i64: 1, 2>, tile = array<i64: 1, 5>,
               inputs = [@x, @w], outputs = [@y], params = {staged_weights = true}} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0>, array<i32: 1>]} : () -> ()

// -----

// A task's buffer list (its buffers, then its TMA descriptors) is copied into the
// worker's shared memory for its dispatch, MPK_GROUP_BUFFERS_MAX entries: a
// longer list cannot run.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<64x64xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace", offset = 256 : i64} : () -> ()
// expected-error@+1 {{group 't' lists 17 buffers and tensor maps, the runtime passes at most 16}}
"mpk.tasks"() {sym_name = "t", kind = "linear", grid = array<i64: 1, 1>, tile = array<i64: 1, 64>,
               inputs = [@x, @w], outputs = [@y], params = {}, tensor_maps = [array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>, array<i64: 1, 64, 64>]} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0>]} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<64x64xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace", offset = 256 : i64} : () -> ()
// expected-error@+1 {{group 't' has tensor_maps = [array<i8: 1, 64, 64>]: each entry must be array<i64: operand, box rows, box cols> with an operand below 3}}
"mpk.tasks"() {sym_name = "t", kind = "linear", grid = array<i64: 1, 1>, tile = array<i64: 1, 64>,
               inputs = [@x, @w], outputs = [@y], params = {}, tensor_maps = [array<i8: 1, 64, 64>]} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0>]} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<64x64xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace", offset = 256 : i64} : () -> ()
// expected-error@+1 {{group 't' has tensor_maps = [array<i64: 3, 64, 64>]: each entry must be array<i64: operand, box rows, box cols> with an operand below 3}}
"mpk.tasks"() {sym_name = "t", kind = "linear", grid = array<i64: 1, 1>, tile = array<i64: 1, 64>,
               inputs = [@x, @w], outputs = [@y], params = {}, tensor_maps = [array<i64: 3, 64, 64>]} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0>]} : () -> ()

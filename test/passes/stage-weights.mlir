// mpk-stage-weights marks the linears whose tile of weight rows fits a stage
// (rows padded by 16 bytes, the stage rounded up to 128 bytes) and records the
// stage size; mpk-materialize then gives their tasks the row size, which tells
// the runtime to copy the rows into a stage instead of prefetching them to L2.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{max-bytes=4096})' | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{max-bytes=4096},mpk-materialize{output=%t.npz})' -o /dev/null
// RUN: %python -c "import numpy as np; print('prefetch', np.load('%t.npz')['prefetch'].tolist())" | filecheck %s --check-prefix=TABLE
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{max-bytes=0})' | filecheck %s --check-prefix=OFF
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{max-bytes=4096},mpk-lower-tasks)' | filecheck %s --check-prefix=LOWER

// 16 rows of 128 bytes: 16 * 144 = 2304 bytes, a 2304-byte stage. The wide
// linear's 16 rows of 512 bytes (8448) do not fit; the add is not a linear.
// CHECK: "mpk.kernel"() {{{.*}}stage_bytes = 2304 : i64
// CHECK: params = {staged_weights = true}, sym_name = "narrow"
// CHECK: params = {}, sym_name = "wide"
// CHECK: params = {}, sym_name = "sum"

// (buffer, offset, bytes, row bytes): narrow's two tiles are staged, wide's prefetched to L2.
// TABLE: prefetch {{\[}}[1, 0, 2048, 128], [1, 2048, 2048, 128], [4, 0, 8192, 0], [-1, 0, 0, 0]]

// OFF: stage_bytes = 0
// OFF-NOT: staged_weights

// The staged linear reads its weights from shared memory (`staged`, the last argument).
// LOWER-LABEL: func.func @mpk_linear_0(
// LOWER-SAME: %[[STAGED:[a-z0-9]+]]: !llvm.ptr<3>) attributes
// LOWER: llvm.getelementptr %[[STAGED]]
// LOWER: llvm.load {{.*}} : !llvm.ptr<3> -> vector<8xbf16>
// LOWER-LABEL: func.func @mpk_linear_1(
// LOWER: llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xbf16>

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<32x64xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x32xbf16>, space = "workspace", offset = 128 : i64} : () -> ()
"mpk.buffer"() {sym_name = "x2", type = tensor<1x256xbf16>, space = "workspace", offset = 256 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w2", type = tensor<16x256xbf16>, space = "weight", name = "w2"} : () -> ()
"mpk.buffer"() {sym_name = "y2", type = tensor<1x16xbf16>, space = "workspace", offset = 768 : i64} : () -> ()
"mpk.buffer"() {sym_name = "s", type = tensor<1x16xbf16>, space = "workspace", offset = 1024 : i64} : () -> ()
"mpk.tasks"() {sym_name = "narrow", kind = "linear", grid = array<i64: 1, 2>, tile = array<i64: 1, 16>,
               inputs = [@x, @w], outputs = [@y], params = {}} : () -> ()
"mpk.tasks"() {sym_name = "wide", kind = "linear", grid = array<i64: 1, 1>, tile = array<i64: 1, 16>,
               inputs = [@x2, @w2], outputs = [@y2], params = {}} : () -> ()
"mpk.tasks"() {sym_name = "sum", kind = "add", grid = array<i64: 1, 1>, tile = array<i64: 1, 16>,
               inputs = [@y2, @y2], outputs = [@s], params = {}} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0, 2>, array<i32: 1, 3>]} : () -> ()

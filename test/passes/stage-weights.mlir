// mpk-stage-weights marks the decode linears and gate_ups whose tile of weight
// rows (both weights' for a gate_up; rows padded by 16 bytes, the chunk rounded up
// to 128 bytes) fits the weight ring, and records the ring's size and depth;
// mpk-materialize then gives their tasks the row size (and gate_up's second
// range), which tells the runtime to copy the rows into the ring instead of
// prefetching them to L2.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{ring-bytes=6144})' | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{ring-bytes=6144},mpk-materialize{output=%t.npz})' -o /dev/null
// RUN: %python -c "import numpy as np; print('prefetch', np.load('%t.npz')['prefetch'].tolist())" | filecheck %s --check-prefix=TABLE
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{ring-bytes=0})' | filecheck %s --check-prefix=OFF
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{ring-bytes=6144},mpk-lower-tasks)' | filecheck %s --check-prefix=LOWER
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{ring-bytes=6144})' | mpk-opt | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-stage-weights{ring-bytes=6144},mpk-stats)' -o /dev/null 2>&1 | filecheck %s --check-prefix=STATS

// narrow: 16 rows of 128 bytes, 16 * 144 = 2304 bytes; both: 2 x 8 rows of 128
// bytes, 2304 bytes. The wide linear's 16 rows of 512 bytes (8448) do not fit the
// 6144-byte ring; the add is not a linear. The depth: 6144 / 2304 = 2 in flight.
// CHECK: "mpk.kernel"() {{{.*}}ring_bytes = 6144 : i64, ring_depth = 2 : i64
// CHECK: params = {staged_weights = true}, sym_name = "narrow"
// CHECK: params = {}, sym_name = "wide"
// CHECK: params = {}, sym_name = "sum"
// CHECK: params = {staged_weights = true}, sym_name = "both"

// (buffer, offset, bytes, row bytes, second buffer, its offset): narrow's two tiles
// are staged, wide's prefetched to L2; both's tiles are gate's rows, then up's.
// TABLE: prefetch {{\[}}[1, 0, 2048, 128, -1, 0], [1, 2048, 2048, 128, -1, 0], [4, 0, 8192, 0, -1, 0], [-1, 0, 0, 0, -1, 0], [10, 0, 1024, 128, 11, 0], [10, 1024, 1024, 128, 11, 1024]]

// STATS: mpk-stats: weight ring 6144 bytes, 2 tasks in flight at most; 2 groups staged (4 tasks)

// OFF: ring_bytes = 0 : i64, ring_depth = 0 : i64
// OFF-NOT: staged_weights

// The staged linear reads its weights from shared memory (`staged`, the last argument).
// LOWER-LABEL: func.func @mpk_linear_0(
// LOWER-SAME: %[[STAGED:[a-z0-9]+]]: !llvm.ptr<3>) attributes
// LOWER: llvm.getelementptr %[[STAGED]]
// LOWER: llvm.load {{.*}} : !llvm.ptr<3> -> vector<8xbf16>
// LOWER-LABEL: func.func @mpk_linear_1(
// LOWER: llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xbf16>
// gate_up's up rows follow gate's: the second weight's rows at a byte offset (rows x
// 144) from the first's, both read from shared memory.
// LOWER-LABEL: func.func @mpk_gate_up_3(
// LOWER-SAME: %[[STAGED2:[a-z0-9]+]]: !llvm.ptr<3>) attributes
// LOWER: llvm.getelementptr %[[STAGED2]][%{{.*}}] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i8
// LOWER: llvm.getelementptr %[[STAGED2]][%{{.*}}] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, bf16
// LOWER-NOT: func.func
// LOWER: llvm.load {{.*}} : !llvm.ptr<3> -> vector<8xbf16>

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
"mpk.buffer"() {sym_name = "xg", type = tensor<1x64xbf16>, space = "workspace", offset = 1152 : i64} : () -> ()
"mpk.buffer"() {sym_name = "wg", type = tensor<16x64xbf16>, space = "weight", name = "wg"} : () -> ()
"mpk.buffer"() {sym_name = "wu", type = tensor<16x64xbf16>, space = "weight", name = "wu"} : () -> ()
"mpk.buffer"() {sym_name = "yg", type = tensor<1x16xbf16>, space = "workspace", offset = 1280 : i64} : () -> ()
"mpk.tasks"() {sym_name = "both", kind = "gate_up", grid = array<i64: 1, 2>, tile = array<i64: 1, 8>,
               inputs = [@xg, @wg, @wu], outputs = [@yg], params = {}} : () -> ()
"mpk.schedule"() {queues = [array<i32: 0, 2, 4>, array<i32: 1, 3, 5>]} : () -> ()

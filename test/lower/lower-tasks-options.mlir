// The CTA size and shared-memory budget are options, recorded on mpk.kernel
// for the runtime; x is not staged when it does not fit the budget.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-lower-tasks{threads=256 smem-bytes=1024})' | filecheck %s

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<512x1024xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x512xbf16>, space = "workspace", offset = 2048 : i64} : () -> ()
"mpk.tasks"() {sym_name = "proj", kind = "linear", grid = array<i64: 1, 8>, tile = array<i64: 1, 64>, inputs = [@x, @w], outputs = [@y], params = {}} : () -> ()

// CHECK: "mpk.kernel"() {{{.*}}smem_bytes = 1024 : i64{{.*}}threads = 256 : i64
// CHECK-LABEL: func.func @mpk_linear_0
// 256 threads are 8 warps: each takes every 8th row of the tile.
// CHECK-DAG: %[[STEP:.*]] = arith.constant 8 : i32
// CHECK-NOT: gpu.barrier
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %[[STEP]]

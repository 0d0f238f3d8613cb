// An attention_split group gets a prefetch function (kernels/attention.py
// prefetch_cache_rows), called through mpk_prefetch_dispatch by one thread
// while its task waits for q, k and v: from positions[b], split p's rows,
// capped at one round of `attend` (16 warps x 2 rows a warp x unroll 2 = 64),
// 1/8 of them per KV head (every task of a split copies its share), whole
// rows of both caches into L2. The group is marked `prefetch` (the task
// table's flag); a linear has no prefetch function and no case.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-lower-tasks)' | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-lower-tasks)' | mpk-opt | filecheck %s

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x2048xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x512x1024xbf16>, space = "state", name = "kc"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x512x1024xbf16>, space = "state", name = "vc"} : () -> ()
"mpk.buffer"() {sym_name = "pos", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "partials", type = tensor<1x4x2112xf32>, space = "workspace", offset = 4096 : i64} : () -> ()
"mpk.buffer"() {sym_name = "o", type = tensor<1x2048xbf16>, space = "workspace", offset = 40960 : i64} : () -> ()
"mpk.buffer"() {sym_name = "arrivals", type = tensor<1x8xi32>, space = "counters"} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<256x2048xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x256xbf16>, space = "workspace", offset = 45056 : i64} : () -> ()
"mpk.tasks"() {sym_name = "attention", kind = "attention_split", grid = array<i64: 1, 4, 8>, tile = array<i64: 1, 1, 264>, inputs = [@q, @kc, @vc, @pos], outputs = [@partials, @o, @arrivals], params = {head_dim = 128 : i64, scale = 8.838834765e-02 : f32, splits = 4 : i64}} : () -> ()
"mpk.tasks"() {sym_name = "o_proj", kind = "linear", grid = array<i64: 1, 8>, tile = array<i64: 1, 32>, inputs = [@o, @w], outputs = [@y], params = {}} : () -> ()
// CHECK: "mpk.tasks"() {fn = 0 : i64, {{.*}}kind = "attention_split", {{.*}}prefetch, sym_name = "attention"
// CHECK-NOT: prefetch
// CHECK: sym_name = "o_proj"
// CHECK-LABEL: func.func @mpk_attention_split_0_prefetch(%arg0: i32, {{.*}}%arg7: !llvm.ptr<1>) attributes {mpk.group = "attention"}
// CHECK: %[[POS:.*]] = llvm.load %{{.*}} : !llvm.ptr<1> -> i32
// CHECK: %[[LEN:.*]] = arith.addi %[[POS]], %c1_i32
// CHECK: %[[BEGIN:.*]] = arith.minsi %{{.*}}, %[[LEN]]
// CHECK: %[[ROUND:.*]] = arith.addi %[[BEGIN]], %c64_i32
// CHECK: %[[END:.*]] = arith.minsi %{{.*}}, %[[ROUND]]
// CHECK: arith.divui %{{.*}}, %c8_i32
// CHECK: scf.if
// CHECK: %[[BYTES:.*]] = arith.muli %{{.*}}, %c2048_i32
// CHECK: llvm.inline_asm has_side_effects "cp.async.bulk.prefetch.L2.global [$0], $1;", "l,r" %{{.*}}, %[[BYTES]]
// CHECK: llvm.inline_asm has_side_effects "cp.async.bulk.prefetch.L2.global [$0], $1;", "l,r" %{{.*}}, %[[BYTES]]
// CHECK-LABEL: func.func @mpk_dispatch(
// CHECK-LABEL: func.func @mpk_prefetch_dispatch(%arg0: i32, %arg1: i32, %arg2: i32, %arg3: !llvm.ptr)
// CHECK: scf.index_switch
// CHECK-NEXT: case 0 {
// CHECK: func.call @mpk_attention_split_0_prefetch(%arg1,
// CHECK-NOT: case 1
// CHECK: default {

// mpk-data-flags flags the bf16 activations that one decode linear writes and
// only linears read (as x or the residual), and marks `flagged` the events whose
// triggering groups write only flagged buffers and whose waiting groups read no
// other activation: `a.out` and `b.out` are flagged; `b` reads the embedding's
// output as its residual, so its event keeps a counter; `c` reads only `b.out`,
// so its event needs none. mpk-plan-memory gives each flagged buffer 4 bytes an
// element, shared with nothing; mpk-materialize gives the flagged event no slot:
// `c`'s tasks wait on none, `b`'s trigger none, and both poll (flag 32: they read a
// flagged buffer, so the runtime looks at their stuck word). `b` and `c` poll a
// flagged x at batch 1, so their first weight loads go out before the poll
// (`early_weights`; not with early-weights=false); `a` reads the embedding's.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags,mpk-schedule{report=false},mpk-plan-memory{report=false})' 2>%t.err | filecheck %s
// RUN: filecheck %s --check-prefix=REPORT < %t.err
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{report=false})' | mpk-opt | filecheck %s --check-prefix=ROUND
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{report=false},mpk-schedule{report=false},mpk-plan-memory{report=false},mpk-materialize{output=%t.npz})' -o /dev/null
// RUN: %python -c "import numpy as np; t = np.load('%t.npz'); print('slots', t['event_triggers'].tolist()); print('tasks', t['tasks'][[9, 13]].tolist())" | filecheck %s --check-prefix=TABLE
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{report=false},mpk-schedule{report=false},mpk-plan-memory{report=false},mpk-lower-tasks)' | filecheck %s --check-prefix=LOWER
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{max-rows=0 report=false})' | filecheck %s --check-prefix=NONE
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{max-x-bytes=256})' 2>&1 | filecheck %s --check-prefix=XBYTES
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{report=false},mpk-stats{dot=-})' -o /dev/null 2>&1 | filecheck %s --check-prefix=STATS
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{report=false})' | filecheck %s --check-prefix=EARLY
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{early-weights=false})' 2>&1 | filecheck %s --check-prefix=LATE
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-data-flags{report=false},mpk-schedule{report=false},mpk-plan-memory{report=false},mpk-lower-tasks)' | filecheck %s --check-prefix=EARLYLOWER

// CHECK: "mpk.kernel"() {{.*}}workspace_bytes = 896 : i64
// CHECK: "mpk.buffer"() {offset = 0 : i64, space = "workspace", sym_name = "embed.out"
// CHECK: "mpk.event"() {size = 1 : i64, sym_name = "ready.b", triggers = 8 : i64}
// CHECK: "mpk.event"() {flagged, size = 1 : i64, sym_name = "ready.c", triggers = 4 : i64}
// CHECK: "mpk.buffer"() {flagged, offset = 128 : i64, space = "workspace", sym_name = "a.out", type = tensor<1x128xbf16>}
// CHECK: "mpk.buffer"() {flagged, offset = 640 : i64, space = "workspace", sym_name = "b.out", type = tensor<1x64xbf16>}
// REPORT: mpk-data-flags: 2 flagged buffers, 1 of 4 events without a counter, 2 groups load weights early
// ROUND: "mpk.event"() {flagged, size = 1 : i64, sym_name = "ready.c"

// Three slots (step, ready.a, ready.b); b's task 0 (global 9) triggers none; c's
// task 0 (global 13) waits on none and polls.
// TABLE: slots [4, 1, 8]
// TABLE: tasks {{\[}}[2, 0, 2, 6, 2, 8, -1, 32], [3, 0, 3, 10, -1, 0, 0, 32]]

// A group with a flagged buffer takes this step's flag (step + 1) and the
// worker's stuck word after its shared memory; its flagged loads poll (and set
// the stuck word if they give up), its flagged stores carry the flag.
// LOWER-LABEL: func.func @mpk_linear_1(
// LOWER-SAME: !llvm.ptr<3>, %[[FLAG:[a-z0-9]+]]: i32, %{{[a-z0-9]+}}: !llvm.ptr<3>) attributes {mpk.group = "a"}
// LOWER: arith.shli %[[FLAG]]
// LOWER: st.relaxed.gpu.global.u32
// LOWER-LABEL: func.func @mpk_linear_3(
// LOWER: scf.while
// LOWER: ld.relaxed.gpu.global.v4.u32
// LOWER: llvm.store {{.*}} : i32, !llvm.ptr<3>
// LOWER: nanosleep
// LOWER-LABEL: func.func @mpk_dispatch(
// LOWER: %[[NEXT:.*]] = arith.addi %arg2, %{{.*}} : i32
// LOWER: %[[STUCK:.*]] = llvm.getelementptr %{{.*}}[-16] : (!llvm.ptr<3>) -> !llvm.ptr<3>, i8
// LOWER: func.call @mpk_linear_3({{.*}}, %[[NEXT]], %[[STUCK]])

// NONE-NOT: flagged

// EARLY: kind = "linear", outputs = [@a.out], params = {}, sym_name = "a"
// EARLY: outputs = [@b.out], params = {early_weights = true}, sym_name = "b"
// EARLY: outputs = [@logits], params = {early_weights = true}, sym_name = "c"
// LATE: 0 groups load weights early
// LATE-NOT: early_weights
// c's weight loads (plain, invariant) come before its poll of x (the scf.while).
// EARLYLOWER-LABEL: func.func @mpk_linear_3(
// EARLYLOWER: scf.if
// EARLYLOWER: llvm.load {{.*}}invariant{{.*}} -> vector<8xbf16>
// EARLYLOWER: scf.while
// EARLYLOWER: ld.relaxed.gpu.global

// An x polled as more than max-x-bytes of flagged words keeps its counter: b's
// x (a.out, 512 bytes of them) does, c's (b.out, 256) does not.
// XBYTES: mpk-data-flags: 1 flagged buffers, 1 of 4 events without a counter
// XBYTES-NOT: flagged, {{.*}}sym_name = "a.out"
// XBYTES: "mpk.buffer"() {flagged, space = "workspace", sym_name = "b.out"

// mpk-stats counts them; its DOT graph dots the flagged event's edge.
// STATS: mpk-stats: 1 of 4 events flagged (mpk-data-flags: no counter), 2 flagged buffers
// STATS: -> {{.*}}[label="ready.c 1x4", style=dotted];

func.func @decode_step(%ids: tensor<1xi32>) -> tensor<1x64xbf16> {
  %table = "mpk.weight"() {name = "embed.weight"} : () -> tensor<100x64xbf16>
  %h = "mpk.embedding"(%ids, %table) {mpk.tile = array<i64: 1, 64>} : (tensor<1xi32>, tensor<100x64xbf16>) -> tensor<1x64xbf16>
  %w1 = "mpk.weight"() {name = "a.weight"} : () -> tensor<128x64xbf16>
  %w2 = "mpk.weight"() {name = "b.weight"} : () -> tensor<64x128xbf16>
  %w3 = "mpk.weight"() {name = "c.weight"} : () -> tensor<64x64xbf16>
  %x1 = "mpk.linear"(%h, %w1) {mpk.tile = array<i64: 1, 16>} : (tensor<1x64xbf16>, tensor<128x64xbf16>) -> tensor<1x128xbf16>
  %x2 = "mpk.linear"(%x1, %w2, %h) {mpk.tile = array<i64: 1, 16>} : (tensor<1x128xbf16>, tensor<64x128xbf16>, tensor<1x64xbf16>) -> tensor<1x64xbf16>
  %y = "mpk.linear"(%x2, %w3) {mpk.tile = array<i64: 1, 16>} : (tensor<1x64xbf16>, tensor<64x64xbf16>) -> tensor<1x64xbf16>
  return %y : tensor<1x64xbf16>
}

// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false})' | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events)' -o /dev/null 2>&1 | filecheck %s --check-prefix=REPORT

// Matching partitions give per-tile events (the silu_mul's `mpk.tile` keeps
// it a group instead of part of the down projection): silu_mul tile i waits
// for gate tile i and up tile i only (8 counters of 2 triggers). The down projection
// reads all of its input: one counter that all 8 silu_mul tasks trigger.
// The residual add reads the columns of its tile of the down projection's
// output but the embedding's output (its other input) through the chain:
// the reduction drops that dependency. The last group triggers the primed
// `step` event that the first group waits on.

// CHECK-DAG: "mpk.event"() {primed, size = 1 : i64, sym_name = "step", triggers = 4 : i64}
// CHECK-DAG: "mpk.event"() {size = 8 : i64, sym_name = "ready.w.gate.silu_mul", triggers = 2 : i64}
// CHECK-DAG: "mpk.event"() {size = 1 : i64, sym_name = "ready.w.down", triggers = 8 : i64}
// CHECK-DAG: "mpk.event"() {size = 4 : i64, sym_name = "ready.w.down.add", triggers = 1 : i64}
// CHECK: "mpk.tasks"() {{.*}}sym_name = "embed"{{.*}}trigger = [@ready.w.gate, #{{.*}}], wait = [@step, #{{.*}}]}
// CHECK: "mpk.tasks"() {{.*}}sym_name = "w.gate"{{.*}}trigger = [@ready.w.gate.silu_mul, [[TILE:#map[0-9]*]]], wait = [@ready.w.gate, #{{.*}}]}
// CHECK: "mpk.tasks"() {{.*}}sym_name = "w.up"{{.*}}trigger = [@ready.w.gate.silu_mul, [[TILE]]], wait = [@ready.w.gate, #{{.*}}]}
// CHECK: "mpk.tasks"() {{.*}}sym_name = "w.gate.silu_mul"{{.*}}trigger = [@ready.w.down, #{{.*}}], wait = [@ready.w.gate.silu_mul, [[TILE]]]}
// CHECK: "mpk.tasks"() {{.*}}sym_name = "w.down"{{.*}}trigger = [@ready.w.down.add, #{{.*}}], wait = [@ready.w.down, #{{.*}}]}
// CHECK: "mpk.tasks"() {{.*}}sym_name = "w.down.add"{{.*}}trigger = [@step, #{{.*}}], wait = [@ready.w.down.add, #{{.*}}]}

// REPORT: mpk-build-events: 33 tasks in 6 groups, 68 task dependencies; 44 events before fusion (one per task and input), 14 after (4 event ops, 2 of one counter)

func.func @decode_step(%ids: tensor<1xi32>) -> tensor<1x64xf32> {
  %table = "mpk.weight"() {name = "embed.weight"} : () -> tensor<100x64xf32>
  %h = "mpk.embedding"(%ids, %table) {mpk.tile = array<i64: 1, 64>} : (tensor<1xi32>, tensor<100x64xf32>) -> tensor<1x64xf32>
  %wg = "mpk.weight"() {name = "w.gate.weight"} : () -> tensor<128x64xf32>
  %wu = "mpk.weight"() {name = "w.up.weight"} : () -> tensor<128x64xf32>
  %wd = "mpk.weight"() {name = "w.down.weight"} : () -> tensor<64x128xf32>
  %g = "mpk.linear"(%h, %wg) {mpk.tile = array<i64: 1, 16>} : (tensor<1x64xf32>, tensor<128x64xf32>) -> tensor<1x128xf32>
  %u = "mpk.linear"(%h, %wu) {mpk.tile = array<i64: 1, 16>} : (tensor<1x64xf32>, tensor<128x64xf32>) -> tensor<1x128xf32>
  %y = "mpk.silu_mul"(%g, %u) {mpk.tile = array<i64: 1, 16>} : (tensor<1x128xf32>, tensor<1x128xf32>) -> tensor<1x128xf32>
  %d = "mpk.linear"(%y, %wd) {mpk.tile = array<i64: 1, 16>} : (tensor<1x128xf32>, tensor<64x128xf32>) -> tensor<1x64xf32>
  %r = "mpk.add"(%d, %h) : (tensor<1x64xf32>, tensor<1x64xf32>) -> tensor<1x64xf32>
  return %r : tensor<1x64xf32>
}

// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition{num-sms=4},mpk-build-events{report=false},mpk-schedule{report=false},mpk-plan-memory{report=false})' | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition{num-sms=4},mpk-build-events{report=false},mpk-schedule,mpk-plan-memory,mpk-stats{dot=-})' -o /dev/null 2>&1 | filecheck %s --check-prefix=REPORT

// Four SMs: four queues (the silu_mul's `mpk.tile` keeps it a group). The down projection's output reuses the bytes of
// the gate output (every task touching it precedes every down task); the
// silu_mul output cannot (silu_mul reads gate and up while writing it), nor
// the embedding output (the last add still reads it). The longest chain, embedding -> gate
// (or up) -> silu_mul -> down -> add, is 5 dependent stages; the primed `step` event is not one.

// CHECK: "mpk.kernel"() {{.*}}num_sms = 4 : i64, sym_name = "decode_step", workspace_bytes = [[WS:[0-9]+]] : i64}
// CHECK-DAG: "mpk.buffer"() {offset = 0 : i64, space = "workspace", sym_name = "embed.out"
// CHECK-DAG: "mpk.buffer"() {offset = [[GATE:[0-9]+]] : i64, space = "workspace", sym_name = "w.gate.out"
// CHECK-DAG: "mpk.buffer"() {offset = 1280 : i64, space = "workspace", sym_name = "w.gate.silu_mul.out"
// CHECK-DAG: "mpk.buffer"() {offset = [[GATE]] : i64, space = "workspace", sym_name = "w.down.out"
// CHECK: "mpk.schedule"() {critical_path_ns = {{[0-9]+}} : i64, queues = [array<i32: {{.*}}>, array<i32: {{.*}}>, array<i32: {{.*}}>, array<i32: {{.*}}>], step_ns = {{[0-9]+}} : i64}

// REPORT: mpk-schedule: 33 tasks on 4 SMs, queue length {{[0-9]+}}..{{[0-9]+}} (mean 8.2); critical path {{.*}} us, predicted step {{.*}} us
// REPORT: mpk-plan-memory: 5 workspace buffers, 2048 bytes unshared, peak workspace 1792 bytes
// REPORT: mpk-stats: 33 tasks in 6 groups
// REPORT: mpk-stats: tasks by kind: add 4, embedding 1, linear 20, silu_mul 8
// REPORT: mpk-stats: 5 events, 15 counters, 2 of one counter, 1 primed
// REPORT: mpk-stats: 5 dependent stages per step{{$}}
// REPORT: mpk-stats: 4 queues
// REPORT: mpk-stats: workspace 1792 bytes
// REPORT: digraph tasks {
// REPORT: g5 -> g0 [label="step 1x4", style=dashed];
// REPORT: g1 -> g3 [label="ready.w.gate.silu_mul 8x2"];
// REPORT: g2 -> g3 [label="ready.w.gate.silu_mul 8x2"];

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

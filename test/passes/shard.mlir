// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-shard{tp=2},mpk-verify)' \
// RUN:   | mpk-opt | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-shard{tp=2},mpk-fuse-residual,mpk-partition{num-sms=8})' \
// RUN:   | filecheck %s --check-prefix=PRODUCT
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-shard{tp=2},mpk-fuse-residual,mpk-partition{num-sms=8 store-in-product=false})' \
// RUN:   | filecheck %s --check-prefix=TASKS
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-shard{tp=2},mpk-fuse-residual,mpk-partition{num-sms=8 allreduce=two-shot},mpk-build-events{report=false},mpk-verify)' \
// RUN:   | filecheck %s --check-prefix=TWO

// The program of each of 2 ranks: q, k and v keep a rank's heads (rows: mpk.shard =
// dim, size, where rank 0's and rank 1's slices start), o_proj its columns, and an
// allreduce sums the ranks' partials and adds the residual once.
// CHECK-LABEL: func.func @decode_step
// CHECK: "mpk.weight"() {mpk.shard = array<i64: 0, 64, 0, 64>, name = "l.self_attn.q_proj.weight"} : () -> tensor<64x64xbf16>
// CHECK: "mpk.weight"() {mpk.shard = array<i64: 0, 32, 0, 32>, name = "l.self_attn.k_proj.weight"} : () -> tensor<32x64xbf16>
// CHECK: "mpk.weight"() {mpk.shard = array<i64: 1, 64, 0, 64>, name = "l.self_attn.o_proj.weight"} : () -> tensor<64x64xbf16>
// CHECK: "mpk.state"() {mpk.shard = array<i64: 2, 32, 0, 32>, name = "l.k_cache"} : () -> tensor<1x16x32xbf16>
// CHECK: "mpk.attention"({{.*}}) {{.*}}: (tensor<1x64xbf16>, tensor<1x16x32xbf16>, tensor<1x16x32xbf16>, tensor<1xi32>) -> tensor<1x64xbf16>
// CHECK: %[[P:.*]] = "mpk.linear"(%{{[0-9]+}}, %{{[0-9]+}}) : (tensor<1x64xbf16>, tensor<64x64xbf16>) -> tensor<1x64xbf16>
// CHECK: %[[S:.*]] = "mpk.allreduce"(%[[P]], %arg0) {ranks = 2 : i64}
// CHECK: return %[[S]]

// In task IR, o_proj stores its tiles into every rank's peer slots [2, 1, 64] itself
// (linear `ranks`, `peers` its last input): no allgather task between it and the sum.
// PRODUCT: "mpk.tasks"() {domain = array<i64: 1, 64>, {{.*}}inputs = [@l.attention.out, @l.self_attn.o_proj.weight, @peers], kind = "linear", outputs = [@l.self_attn.o_proj.allreduce.slots], params = {ranks = 2 : i64}
// PRODUCT: "mpk.buffer"() {space = "peer", sym_name = "l.self_attn.o_proj.allreduce.slots", type = tensor<2x1x64xbf16>}
// PRODUCT: "mpk.tasks"() {{.*}}inputs = [@l.self_attn.o_proj.allreduce.slots, @input0], kind = "allreduce"
// PRODUCT-NOT: "allgather"
// Without: an allgather stores each rank's partial into every rank's peer slots
// [2, 1, 64], whose event every rank's tasks trigger; the allreduce sums the slots.
// TASKS: "mpk.buffer"() {space = "io", sym_name = "peers", type = tensor<3xi64>}
// TASKS: "mpk.buffer"() {space = "peer", sym_name = "l.self_attn.o_proj.allreduce.slots", type = tensor<2x1x64xbf16>}
// TASKS: "mpk.tasks"() {{.*}}inputs = [@l.self_attn.o_proj.out, @peers], kind = "allgather", outputs = [@l.self_attn.o_proj.allreduce.slots], params = {ranks = 2 : i64}
// TASKS: "mpk.tasks"() {{.*}}inputs = [@l.self_attn.o_proj.allreduce.slots, @input0], kind = "allreduce"
// Two-shot: each tile goes to the rank owning its columns (a scatter into [2, 1, 32]
// slots), whose sums event its tasks of both ranks trigger; the sums of each rank's
// chunk, plus the residual, are gathered into every rank's result.
// TWO: "mpk.event"() {ranks = 2 : i64, size = 1 : i64, sym_name = "ready.l.self_attn.o_proj.allreduce.reduce", triggers = 8 : i64}
// TWO: "mpk.buffer"() {space = "peer", sym_name = "l.self_attn.o_proj.allreduce.slots", type = tensor<2x1x32xbf16>}
// TWO: "mpk.tasks"() {{.*}}kind = "scatter", outputs = [@l.self_attn.o_proj.allreduce.slots]
// TWO: "mpk.tasks"() {{.*}}inputs = [@l.self_attn.o_proj.allreduce.slots], kind = "allreduce", outputs = [@l.self_attn.o_proj.allreduce.sums]
// TWO: "mpk.tasks"() {{.*}}inputs = [@l.self_attn.o_proj.allreduce.sums, @peers, @input0], kind = "allgather", outputs = [@l.self_attn.o_proj.allreduce.out]
func.func @decode_step(%h: tensor<1x64xbf16>, %pos: tensor<1xi32>) -> tensor<1x64xbf16> {
  %wq = "mpk.weight"() {name = "l.self_attn.q_proj.weight"} : () -> tensor<128x64xbf16>
  %wk = "mpk.weight"() {name = "l.self_attn.k_proj.weight"} : () -> tensor<64x64xbf16>
  %wv = "mpk.weight"() {name = "l.self_attn.v_proj.weight"} : () -> tensor<64x64xbf16>
  %wo = "mpk.weight"() {name = "l.self_attn.o_proj.weight"} : () -> tensor<64x128xbf16>
  %q = "mpk.linear"(%h, %wq) : (tensor<1x64xbf16>, tensor<128x64xbf16>) -> tensor<1x128xbf16>
  %k = "mpk.linear"(%h, %wk) : (tensor<1x64xbf16>, tensor<64x64xbf16>) -> tensor<1x64xbf16>
  %v = "mpk.linear"(%h, %wv) : (tensor<1x64xbf16>, tensor<64x64xbf16>) -> tensor<1x64xbf16>
  %kc = "mpk.state"() {name = "l.k_cache"} : () -> tensor<1x16x64xbf16>
  %vc = "mpk.state"() {name = "l.v_cache"} : () -> tensor<1x16x64xbf16>
  %kc1 = "mpk.kv_append"(%kc, %k, %pos) : (tensor<1x16x64xbf16>, tensor<1x64xbf16>, tensor<1xi32>) -> tensor<1x16x64xbf16>
  %vc1 = "mpk.kv_append"(%vc, %v, %pos) : (tensor<1x16x64xbf16>, tensor<1x64xbf16>, tensor<1xi32>) -> tensor<1x16x64xbf16>
  %o = "mpk.attention"(%q, %kc1, %vc1, %pos) {head_dim = 32 : i64, scale = 0.17677669 : f32} : (tensor<1x128xbf16>, tensor<1x16x64xbf16>, tensor<1x16x64xbf16>, tensor<1xi32>) -> tensor<1x128xbf16>
  %y = "mpk.linear"(%o, %wo, %h) : (tensor<1x128xbf16>, tensor<64x128xbf16>, tensor<1x64xbf16>) -> tensor<1x64xbf16>
  return %y : tensor<1x64xbf16>
}


// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition,mpk-verify)' | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition{rope-in-attention=false},mpk-verify)' \
// RUN:   | filecheck %s --check-prefix=APART
// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition{merge-in-attention=false},mpk-verify)' \
// RUN:   | filecheck %s --check-prefix=COMBINE
// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition,mpk-build-events{report=false},mpk-verify)' \
// RUN:   | mpk-opt | filecheck %s --check-prefix=EVENTS
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition{rope-in-attention=maybe})' 2>&1 \
// RUN:   | filecheck %s --check-prefix=BADOPT

// BADOPT: mpk-opt: error: option 'rope-in-attention' of 'mpk-partition' expects bool, got 'maybe'

// A split attention (mpk.splits) takes its rope_append into its tasks
// (`rope-in-attention`, the default): no rope_append group; the tasks read
// q, k and v before norm and rope, the caches and the norm weights, and write
// the caches too. One event hop less per layer. The last split of each KV head
// merges the partial rows into the output (`merge-in-attention`, the default):
// no attention_combine group, another hop less.

// CHECK-NOT: kind = "rope_append"
// CHECK: "mpk.tasks"() {grid = array<i64: 2, 4, 2>, inputs = [@wq.out, @wk.out, @wv.out, @layers.0.k_cache, @layers.0.v_cache, @positions, @q_norm.weight, @k_norm.weight], kind = "attention_split", outputs = [@layers.0.attention.partials, @layers.0.k_cache, @layers.0.v_cache, @layers.0.attention.out, @layers.0.attention.arrivals], params = {eps = 9.99999997E-7 : f32, head_dim = 64 : i64, inv_freq = array<f32: {{.*}}>, scale = 1.250000e-01 : f32, splits = 4 : i64}
// CHECK-NOT: kind = "attention_combine"

// APART: kind = "rope_append"
// APART: inputs = [@layers.0.rope_append.out, @layers.0.k_cache, @layers.0.v_cache, @positions], kind = "attention_split", outputs = [@layers.0.attention.partials, @layers.0.attention.out, @layers.0.attention.arrivals]

// COMBINE: kind = "attention_partial", outputs = [@layers.0.attention.partials, @layers.0.k_cache, @layers.0.v_cache]
// COMBINE-NEXT: "mpk.tasks"() {{.*}}inputs = [@layers.0.attention.partials], kind = "attention_combine"

// The partials wait on the q, k and v projections directly.
// EVENTS: "mpk.event"() {size = 2 : i64, sym_name = "ready.layers.0.attention", triggers = 16 : i64}
// EVENTS: sym_name = "wq", {{.*}}trigger = [@ready.layers.0.attention
// EVENTS: sym_name = "wk", {{.*}}trigger = [@ready.layers.0.attention
// EVENTS: sym_name = "wv", {{.*}}trigger = [@ready.layers.0.attention
// EVENTS: kind = "attention_split"{{.*}}wait = [@ready.layers.0.attention
func.func @decode_step(%x: tensor<2x256xbf16>, %pos: tensor<2xi32>) -> tensor<2x256xbf16> {
  %wq = "mpk.weight"() {name = "wq.weight"} : () -> tensor<256x256xbf16>
  %wk = "mpk.weight"() {name = "wk.weight"} : () -> tensor<128x256xbf16>
  %wv = "mpk.weight"() {name = "wv.weight"} : () -> tensor<128x256xbf16>
  %qn = "mpk.weight"() {name = "q_norm.weight"} : () -> tensor<64xbf16>
  %kn = "mpk.weight"() {name = "k_norm.weight"} : () -> tensor<64xbf16>
  %q = "mpk.linear"(%x, %wq) : (tensor<2x256xbf16>, tensor<256x256xbf16>) -> tensor<2x256xbf16>
  %k = "mpk.linear"(%x, %wk) : (tensor<2x256xbf16>, tensor<128x256xbf16>) -> tensor<2x128xbf16>
  %v = "mpk.linear"(%x, %wv) : (tensor<2x256xbf16>, tensor<128x256xbf16>) -> tensor<2x128xbf16>
  %q1 = "mpk.rmsnorm"(%q, %qn) {eps = 1.0e-06 : f32} : (tensor<2x256xbf16>, tensor<64xbf16>) -> tensor<2x256xbf16>
  %k1 = "mpk.rmsnorm"(%k, %kn) {eps = 1.0e-06 : f32} : (tensor<2x128xbf16>, tensor<64xbf16>) -> tensor<2x128xbf16>
  %q2 = "mpk.rope"(%q1, %pos) {inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>} : (tensor<2x256xbf16>, tensor<2xi32>) -> tensor<2x256xbf16>
  %k2 = "mpk.rope"(%k1, %pos) {inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>} : (tensor<2x128xbf16>, tensor<2xi32>) -> tensor<2x128xbf16>
  %kc = "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<2x64x128xbf16>
  %vc = "mpk.state"() {name = "layers.0.v_cache"} : () -> tensor<2x64x128xbf16>
  %kc1 = "mpk.kv_append"(%kc, %k2, %pos) : (tensor<2x64x128xbf16>, tensor<2x128xbf16>, tensor<2xi32>) -> tensor<2x64x128xbf16>
  %vc1 = "mpk.kv_append"(%vc, %v, %pos) : (tensor<2x64x128xbf16>, tensor<2x128xbf16>, tensor<2xi32>) -> tensor<2x64x128xbf16>
  %o = "mpk.attention"(%q2, %kc1, %vc1, %pos) {head_dim = 64 : i64, scale = 0.125 : f32, mpk.splits = 4 : i64} : (tensor<2x256xbf16>, tensor<2x64x128xbf16>, tensor<2x64x128xbf16>, tensor<2xi32>) -> tensor<2x256xbf16>
  return %o : tensor<2x256xbf16>
}

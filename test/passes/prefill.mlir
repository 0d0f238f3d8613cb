// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample,mpk-prefill{chunk=64},mpk-verify)' | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample,mpk-prefill{chunk=64 all-logits=true},mpk-verify)' | filecheck %s --check-prefix=ALL
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample,mpk-prefill{chunk=64},%fusions,mpk-partition,mpk-build-events,mpk-verify)' | filecheck %s --check-prefix=TASKS

// A decode step of 2 sequences becomes a prefill step of 64 rows each: token
// ids and positions get 128 rows, so does every activation; the caches keep
// their 2 sequences. Before the LM head an embedding gathers each sequence's
// last prompt row (`last_rows`), and the sample draws at `last_positions`;
// `row_counts` (the prompt rows of each sequence) is read by no graph op.
// CHECK-LABEL: func.func @prefill_step(%arg0: tensor<128xi64>, %arg1: tensor<128xi64>, %arg2: tensor<2x4xf32> {mpk.io = "sample_params"}, %arg3: tensor<2xi32> {mpk.io = "sample_seeds"}, %arg4: tensor<2xi32> {mpk.io = "last_rows"}, %arg5: tensor<2xi32> {mpk.io = "last_positions"}, %arg6: tensor<2xi32> {mpk.io = "row_counts"}) -> (tensor<2xi32>, tensor<2x512xbf16>)
// CHECK: "mpk.embedding"(%arg0, %{{.*}}) : (tensor<128xi64>, tensor<512x256xbf16>) -> tensor<128x256xbf16>
// CHECK: "mpk.linear"({{.*}}) : (tensor<128x256xbf16>, tensor<256x256xbf16>) -> tensor<128x256xbf16>
// CHECK: "mpk.kv_append"({{.*}}) : (tensor<2x256x128xbf16>, tensor<128x128xbf16>, tensor<128xi64>) -> tensor<2x256x128xbf16>
// CHECK: "mpk.attention"({{.*}}) {head_dim = 64 : i64, scale = 1.250000e-01 : f32} : (tensor<128x256xbf16>, tensor<2x256x128xbf16>, tensor<2x256x128xbf16>, tensor<128xi64>) -> tensor<128x256xbf16>
// CHECK: %[[LAST:.*]] = "mpk.embedding"(%arg4, %[[X:.*]]) : (tensor<2xi32>, tensor<128x256xbf16>) -> tensor<2x256xbf16>
// CHECK: %[[LOGITS:.*]] = "mpk.linear"(%[[LAST]], %{{.*}}) : (tensor<2x256xbf16>, tensor<512x256xbf16>) -> tensor<2x512xbf16>
// CHECK: "mpk.sample"(%[[LOGITS]], %arg5, %arg2, %arg3)

// all-logits: the LM head reads every row; the gather picks the sampled rows' logits.
// ALL: -> (tensor<2xi32>, tensor<128x512xbf16>)
// ALL: %[[LOGITS:.*]] = "mpk.linear"(%{{.*}}, %{{.*}}) : (tensor<128x256xbf16>, tensor<512x256xbf16>) -> tensor<128x512xbf16>
// ALL: %[[ROWS:.*]] = "mpk.embedding"(%arg4, %[[LOGITS]]) : (tensor<2xi32>, tensor<128x512xbf16>) -> tensor<2x512xbf16>
// ALL: "mpk.sample"(%[[ROWS]], %arg5, %arg2, %arg3)
// ALL: return %{{.*}}, %[[LOGITS]]

// Partitioned: the linears are GEMM tiles of 128 rows (grid [1, N / tile]), the
// QK-norm, rope and append one `rope_append` group of row tiles, the attention
// `attention_prefill` tiles of rows x one KV head group, the last rows sampled
// in 4 splits of their 512 logits (`sample_split`). The rope_append and attention tasks read `row_counts` to
// skip padding rows; the GEMM tiles cannot (128 rows span the two sequences of 64).
// TASKS: "mpk.buffer"() {space = "io", sym_name = "last_rows", type = tensor<2xi32>}
// TASKS: kind = "linear"{{.*}}sym_name = "wq"{{.*}}tile = array<i64: 128, {{[0-9]+}}>
// TASKS: kind = "linear"{{.*}}params = {}, sym_name = "wk"
// TASKS: inputs = [{{.*}}, @row_counts], kind = "rope_append"{{.*}}row_counts{{.*}}tile = array<i64: {{[0-9]+}}, 128>
// TASKS: grid = array<i64: 2, 2>, inputs = [@layers.0.rope_append.out, @layers.0.k_cache, @layers.0.v_cache, @positions, @row_counts], kind = "attention_prefill"{{.*}}tile = array<i64: 64, 128>
// TASKS: inputs = [@last_rows, @{{.*}}], kind = "embedding"
// TASKS: grid = array<i64: 2, 4, 1>, inputs = [@logits, @last_positions, @sample_params, @sample_seeds], kind = "sample_split", outputs = [@logits.sample.partials, @next_tokens, @logits.sample.arrivals]
func.func @decode_step(%tokens: tensor<2xi64>, %pos: tensor<2xi64>) -> (tensor<2xi32>, tensor<2x512xbf16>) {
  %emb = "mpk.weight"() {name = "embed.weight"} : () -> tensor<512x256xbf16>
  %x = "mpk.embedding"(%tokens, %emb) : (tensor<2xi64>, tensor<512x256xbf16>) -> tensor<2x256xbf16>
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
  %q2 = "mpk.rope"(%q1, %pos) {inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>} : (tensor<2x256xbf16>, tensor<2xi64>) -> tensor<2x256xbf16>
  %k2 = "mpk.rope"(%k1, %pos) {inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>} : (tensor<2x128xbf16>, tensor<2xi64>) -> tensor<2x128xbf16>
  %kc = "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<2x256x128xbf16>
  %vc = "mpk.state"() {name = "layers.0.v_cache"} : () -> tensor<2x256x128xbf16>
  %kc1 = "mpk.kv_append"(%kc, %k2, %pos) : (tensor<2x256x128xbf16>, tensor<2x128xbf16>, tensor<2xi64>) -> tensor<2x256x128xbf16>
  %vc1 = "mpk.kv_append"(%vc, %v, %pos) : (tensor<2x256x128xbf16>, tensor<2x128xbf16>, tensor<2xi64>) -> tensor<2x256x128xbf16>
  %o = "mpk.attention"(%q2, %kc1, %vc1, %pos) {head_dim = 64 : i64, scale = 0.125 : f32} : (tensor<2x256xbf16>, tensor<2x256x128xbf16>, tensor<2x256x128xbf16>, tensor<2xi64>) -> tensor<2x256xbf16>
  %nw = "mpk.weight"() {name = "norm.weight"} : () -> tensor<256xbf16>
  %h = "mpk.rmsnorm"(%o, %nw) {eps = 1.0e-06 : f32} : (tensor<2x256xbf16>, tensor<256xbf16>) -> tensor<2x256xbf16>
  %logits = "mpk.linear"(%h, %emb) : (tensor<2x256xbf16>, tensor<512x256xbf16>) -> tensor<2x512xbf16>
  %next = "mpk.argmax"(%logits) : (tensor<2x512xbf16>) -> tensor<2xi32>
  return %next, %logits : tensor<2xi32>, tensor<2x512xbf16>
}

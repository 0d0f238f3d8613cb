// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample,mpk-partition{num-sms=8},mpk-verify)' -split-input-file | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample,mpk-partition{num-sms=8},mpk-build-events{report=false},mpk-verify)' -split-input-file \
// RUN:   | mpk-opt -split-input-file | filecheck %s --check-prefix=EVENTS
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-sample,mpk-partition{num-sms=8 split-sample=false},mpk-verify)' -split-input-file \
// RUN:   | filecheck %s --check-prefix=WHOLE

// A decode step's sampler in splits of each logits row (`split-sample`, the
// default): about one wave of tasks (8 SMs / 2 rows = 4 splits of the 2048
// logits; at least 128 columns each), partials [B, P, 4], one arrival counter
// per row; the last split of a row publishes its token.
// CHECK: "mpk.buffer"() {space = "workspace", sym_name = "logits.sample.partials", type = tensor<2x4x4xf32>}
// CHECK: "mpk.buffer"() {space = "counters", sym_name = "logits.sample.arrivals", type = tensor<2xi32>}
// CHECK: "mpk.tasks"() {grid = array<i64: 2, 4, 1>, inputs = [@logits, @positions, @sample_params, @sample_seeds], kind = "sample_split", outputs = [@logits.sample.partials, @next_tokens, @tokens, @positions, @logits.sample.arrivals], params = {}, sym_name = "logits.sample", tile = array<i64: 1, 1, 4>}

// Every split waits for the LM head; the next step waits for every split.
// EVENTS: kind = "sample_split"
// EVENTS-SAME: trigger = [@step
// EVENTS-SAME: wait = [@

// WHOLE: "mpk.tasks"() {grid = array<i64: 2>, inputs = [@logits, @positions, @sample_params, @sample_seeds], kind = "sample", outputs = [@next_tokens, @tokens, @positions]
func.func @decode_step(%tokens: tensor<2xi32>, %pos: tensor<2xi32>) -> (tensor<2xi32>, tensor<2x2048xf32>) {
  %table = "mpk.weight"() {name = "embed.weight"} : () -> tensor<2048x64xf32>
  %x = "mpk.embedding"(%tokens, %table) : (tensor<2xi32>, tensor<2048x64xf32>) -> tensor<2x64xf32>
  %r = "mpk.rope"(%x, %pos) {inv_freq = array<f32: 1.0, 0.5>} : (tensor<2x64xf32>, tensor<2xi32>) -> tensor<2x64xf32>
  %w = "mpk.weight"() {name = "lm_head.weight"} : () -> tensor<2048x64xf32>
  %logits = "mpk.linear"(%r, %w) : (tensor<2x64xf32>, tensor<2048x64xf32>) -> tensor<2x2048xf32>
  %next = "mpk.argmax"(%logits) : (tensor<2x2048xf32>) -> tensor<2xi32>
  return %next, %logits : tensor<2xi32>, tensor<2x2048xf32>
}

// -----

// `mpk.splits` on the sample sets P: 6 splits of 168 columns (a multiple of 8), the last of 160.
// CHECK: sym_name = "lm_head.sample.partials", type = tensor<1x6x4xf32>
// CHECK: grid = array<i64: 1, 6, 1>{{.*}}kind = "sample_split"
func.func @chosen(%tokens: tensor<1xi32>, %pos: tensor<1xi32>, %params: tensor<1x4xf32> {mpk.io = "sample_params"},
                  %seeds: tensor<1xi32> {mpk.io = "sample_seeds"}) -> tensor<1xi32> {
  %table = "mpk.weight"() {name = "embed.weight"} : () -> tensor<1000x64xf32>
  %x = "mpk.embedding"(%tokens, %table) : (tensor<1xi32>, tensor<1000x64xf32>) -> tensor<1x64xf32>
  %r = "mpk.rope"(%x, %pos) {inv_freq = array<f32: 1.0, 0.5>} : (tensor<1x64xf32>, tensor<1xi32>) -> tensor<1x64xf32>
  %w = "mpk.weight"() {name = "lm_head.weight"} : () -> tensor<1000x64xf32>
  %logits = "mpk.linear"(%r, %w) : (tensor<1x64xf32>, tensor<1000x64xf32>) -> tensor<1x1000xf32>
  %next = "mpk.sample"(%logits, %pos, %params, %seeds) {mpk.splits = 6} : (tensor<1x1000xf32>, tensor<1xi32>, tensor<1x4xf32>, tensor<1xi32>) -> tensor<1xi32>
  return %next : tensor<1xi32>
}

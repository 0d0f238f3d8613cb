// Task groups whose buffers or params do not fit what their kind's lowering
// reads used to pass the verifier and crash a pass (a 3-D x or q: a division
// by zero or a failed unpack in mpk-lower-tasks; an f8 buffer: a KeyError in
// mpk-build-events; num_sms = 2^31: out of memory in mpk-schedule). Each is a
// located error of the verifier now (issue 16).
// RUN: mpk-opt %s -split-input-file -verify-diagnostics

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x2x1024xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<2048x1024xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x2048xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{x must be 2-D [batch, features], got tensor<1x2x1024xbf16>}}
"mpk.tasks"() {sym_name = "proj", kind = "linear", grid = array<i64: 1, 16>, tile = array<i64: 1, 128>, inputs = [@x, @w], outputs = [@y], params = {}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "pos", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x1x1024xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x64x512xbf16>, space = "state", name = "kc"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x64x512xbf16>, space = "state", name = "vc"} : () -> ()
"mpk.buffer"() {sym_name = "o", type = tensor<1x1024xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{q must be 2-D [batch, features], got tensor<1x1x1024xbf16>}}
"mpk.tasks"() {sym_name = "attn", kind = "attention", grid = array<i64: 1, 4>, tile = array<i64: 1, 256>, inputs = [@q, @kc, @vc, @pos], outputs = [@o], params = {head_dim = 128 : i64, scale = 0.08 : f32}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'add' groups take 2 inputs and 1 outputs, got 1 and 1}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{'type' must have static positive sizes and one of the element types bf16, f16, f32, f64, i32, i64, i8, i1, got tensor<1x64xf8E4M3FN>}}
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xf8E4M3FN>, space = "workspace"} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{'type' must have static positive sizes}}
"mpk.buffer"() {sym_name = "x", type = tensor<0x64xf32>, space = "workspace"} : () -> ()

// -----

// expected-error@+1 {{'num_sms' 2147483648 exceeds 65536}}
"mpk.kernel"() {sym_name = "k", num_sms = 2147483648 : i64, arch = "sm_90"} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{'size' 1099511627776 exceeds 4194304}}
"mpk.event"() {sym_name = "e", size = 1099511627776 : i64, triggers = 1 : i64} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x8388608xf32>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x8388608xf32>, space = "workspace"} : () -> ()
// expected-error@+1 {{a group of 8388608 tasks: at most 4194304 are supported}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 8388608>, tile = array<i64: 1, 1>, inputs = [@x, @x], outputs = [@y]} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.event"() {sym_name = "e", size = 4 : i64, triggers = 1 : i64} : () -> ()
// expected-error@+1 {{'trigger' map (d0, d1) -> (d1 floordiv 0) cannot be evaluated: divide by zero}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x, @x], outputs = [@y], trigger = [@e, affine_map<(d0, d1) -> (d1 floordiv 0)>]} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "pos", type = tensor<2xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "new", type = tensor<2x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<2x16x64xbf16>, space = "state", name = "kc"} : () -> ()
// expected-error@+1 {{the domain [2, 32] must be [2, 64], the shape of new}}
"mpk.tasks"() {sym_name = "t", kind = "kv_append", grid = array<i64: 1, 1>, tile = array<i64: 2, 32>, domain = array<i64: 2, 32>, inputs = [@kc, @new, @pos], outputs = [@kc], params = {}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "pos", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x256xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x64x128xbf16>, space = "state", name = "kc"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x64x128xbf16>, space = "state", name = "vc"} : () -> ()
"mpk.buffer"() {sym_name = "parts", type = tensor<1x2x64xf32>, space = "workspace"} : () -> ()
// expected-error@+1 {{the partials must be tensor<1x2x4*Wxf32> (4 query heads of W >= 66 floats), got tensor<1x2x64xf32>}}
"mpk.tasks"() {sym_name = "attn.partial", kind = "attention_partial", grid = array<i64: 1, 2, 1>, tile = array<i64: 1, 1, 64>, inputs = [@q, @kc, @vc, @pos], outputs = [@parts], params = {head_dim = 64 : i64, scale = 0.125 : f32, splits = 2 : i64}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<64xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'eps' must be a float, got "tiny"}}
"mpk.tasks"() {sym_name = "t", kind = "rmsnorm", grid = array<i64: 1, 1>, tile = array<i64: 1, 64>, inputs = [@x, @w], outputs = [@y], params = {eps = "tiny"}} : () -> ()

// -----

// The argmax lowering takes one row per task without checking it.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "logits", type = tensor<2x64xf32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "next_tokens", type = tensor<2xi32>, space = "io"} : () -> ()
// expected-error@+1 {{invalid tile [2]: 'argmax' tasks need tile size 1 in dim 0, got 2}}
"mpk.tasks"() {sym_name = "t", kind = "argmax", grid = array<i64: 1>, tile = array<i64: 2>, inputs = [@logits], outputs = [@next_tokens], params = {}} : () -> ()

// -----

// An attention_split's arrival counters: one i32 per sequence and KV head.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "pos", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x256xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x64x128xbf16>, space = "state", name = "kc"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x64x128xbf16>, space = "state", name = "vc"} : () -> ()
"mpk.buffer"() {sym_name = "parts", type = tensor<1x2x272xf32>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "o", type = tensor<1x256xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "arrivals", type = tensor<1x2xf32>, space = "counters"} : () -> ()
// expected-error@+1 {{the arrival counters must be tensor<1x2xi32> (one per sequence and KV head), got tensor<1x2xf32>}}
"mpk.tasks"() {sym_name = "attn", kind = "attention_split", grid = array<i64: 1, 2, 2>, tile = array<i64: 1, 1, 136>, inputs = [@q, @kc, @vc, @pos], outputs = [@parts, @o, @arrivals], params = {head_dim = 64 : i64, scale = 0.125 : f32, splits = 2 : i64}} : () -> ()

// -----

// A gate_up at decode rows with its layer norm fused (norm_eps): the norm weight is x's width.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "wg", type = tensor<128x64xbf16>, space = "weight", name = "wg"} : () -> ()
"mpk.buffer"() {sym_name = "wu", type = tensor<128x64xbf16>, space = "weight", name = "wu"} : () -> ()
"mpk.buffer"() {sym_name = "nw", type = tensor<32xbf16>, space = "weight", name = "nw"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x128xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{the fused norm weight must be tensor<64xbf16>, got tensor<32xbf16>}}
"mpk.tasks"() {sym_name = "mlp.gate_up", kind = "gate_up", grid = array<i64: 1, 16>, tile = array<i64: 1, 8>, inputs = [@x, @wg, @wu, @nw], outputs = [@y], params = {norm_eps = 1.0e-06 : f32}} : () -> ()

// -----

// ... and a gate_up with one input too many for its params.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "wg", type = tensor<128x64xbf16>, space = "weight", name = "wg"} : () -> ()
"mpk.buffer"() {sym_name = "wu", type = tensor<128x64xbf16>, space = "weight", name = "wu"} : () -> ()
"mpk.buffer"() {sym_name = "nw", type = tensor<64xbf16>, space = "weight", name = "nw"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x128xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'gate_up' groups take 3 inputs (x, w_gate, w_up[, norm weight: norm_eps][, row_counts]) and 1 outputs, got 4 and 1}}
"mpk.tasks"() {sym_name = "mlp.gate_up", kind = "gate_up", grid = array<i64: 1, 16>, tile = array<i64: 1, 8>, inputs = [@x, @wg, @wu, @nw], outputs = [@y], params = {}} : () -> ()

// -----

// Params are typed per kind (lowering/kinds: Params): an unknown name is refused, with the names it takes.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<64x64xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{unknown param 'nrom_eps' (takes: norm_eps, silu_gate, row_counts, unroll, staged_weights, early_weights, ranks)}}
"mpk.tasks"() {sym_name = "t", kind = "linear", grid = array<i64: 1, 8>, tile = array<i64: 1, 8>, inputs = [@x, @w], outputs = [@y], params = {nrom_eps = 1.0e-06 : f32}} : () -> ()

// -----

// ... and a required one missing is named.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<64xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{needs the param 'eps'}}
"mpk.tasks"() {sym_name = "t", kind = "rmsnorm", grid = array<i64: 1, 1>, tile = array<i64: 1, 64>, inputs = [@x, @w], outputs = [@y], params = {}} : () -> ()

// -----

// A sample_split whose splits leave the last without logits (splits of 8 columns of 10).
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "logits", type = tensor<1x10xf32>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "params", type = tensor<1x4xf32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "seeds", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "parts", type = tensor<1x3x4xf32>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "next_tokens", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "arrivals", type = tensor<1xi32>, space = "counters"} : () -> ()
// expected-error@+1 {{3 splits of 10 logits leave the last without columns (splits of 8)}}
"mpk.tasks"() {sym_name = "sample", kind = "sample_split", grid = array<i64: 1, 3, 1>, tile = array<i64: 1, 1, 4>, inputs = [@logits, @positions, @params, @seeds], outputs = [@parts, @next_tokens, @arrivals], params = {}} : () -> ()

// -----

// A sample_split's partials: [B, P, 4] f32.
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "logits", type = tensor<1x10xf32>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "params", type = tensor<1x4xf32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "seeds", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "parts", type = tensor<1x2x2xf32>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "next_tokens", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "arrivals", type = tensor<1xi32>, space = "counters"} : () -> ()
// expected-error@+1 {{the partials must be tensor<1xPx4xf32> (P splits of a row), got tensor<1x2x2xf32>}}
"mpk.tasks"() {sym_name = "sample", kind = "sample_split", grid = array<i64: 1, 2, 1>, tile = array<i64: 1, 1, 2>, inputs = [@logits, @positions, @params, @seeds], outputs = [@parts, @next_tokens, @arrivals], params = {}} : () -> ()

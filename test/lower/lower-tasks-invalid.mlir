// Errors of mpk-lower-tasks, at the group's location.
// RUN: mpk-opt %s -split-input-file -verify-diagnostics --pass-pipeline='builtin.module(mpk-lower-tasks)'

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x256xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x256xbf16>, space = "workspace", offset = 512 : i64} : () -> ()
// A group whose params do not fit its kind (an allreduce without its ranks).
// expected-error@+1 {{needs the param 'ranks'}}
"mpk.tasks"() {sym_name = "f", kind = "allreduce", grid = array<i64: 1, 1>, tile = array<i64: 1, 256>, inputs = [@x], outputs = [@y], params = {}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "pos", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x64x512xbf16>, space = "state", name = "kc"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x64x512xbf16>, space = "state", name = "vc"} : () -> ()
"mpk.buffer"() {sym_name = "o", type = tensor<1x1024xbf16>, space = "workspace", offset = 2048 : i64} : () -> ()
// expected-error@+1 {{cannot lower 'attention' group @attn: head_dim 512 is not 8, 16, ..., 256}}
"mpk.tasks"() {sym_name = "attn", kind = "attention", grid = array<i64: 1, 1>, tile = array<i64: 1, 1024>, inputs = [@q, @kc, @vc, @pos], outputs = [@o], params = {head_dim = 512 : i64, scale = 0.04 : f32}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<2x256xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<256x256xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<2x256xbf16>, space = "workspace", offset = 1024 : i64} : () -> ()
// expected-error@+1 {{linear tiles take all 2 rows, not 1}}
"mpk.tasks"() {sym_name = "proj", kind = "linear", grid = array<i64: 2, 2>, tile = array<i64: 1, 128>, inputs = [@x, @w], outputs = [@y], params = {}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x256xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "k", type = tensor<1x128xbf16>, space = "workspace", offset = 512 : i64} : () -> ()
"mpk.buffer"() {sym_name = "v", type = tensor<1x128xbf16>, space = "workspace", offset = 768 : i64} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x64x128xbf16>, space = "state", name = "k_cache"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x64x128xbf16>, space = "state", name = "v_cache"} : () -> ()
"mpk.buffer"() {sym_name = "parts", type = tensor<1x2x264xf32>, space = "workspace", offset = 1024 : i64} : () -> ()
// A partial attention with its rope fused in, whose rope table does not cover a head.
// expected-error@+1 {{cannot lower 'attention_partial' group @attn.partial: head_dim 64 is not 2 * len(inv_freq) = 8}}
"mpk.tasks"() {sym_name = "attn.partial", kind = "attention_partial", grid = array<i64: 1, 2, 2>, tile = array<i64: 1, 1, 132>, inputs = [@q, @k, @v, @kc, @vc, @positions], outputs = [@parts, @kc, @vc], params = {head_dim = 64 : i64, scale = 0.125 : f32, splits = 2 : i64, inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125>}} : () -> ()

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x256xbf16>, space = "workspace", offset = 0 : i64, flagged} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x64x128xbf16>, space = "state", name = "k_cache"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x64x128xbf16>, space = "state", name = "v_cache"} : () -> ()
"mpk.buffer"() {sym_name = "parts", type = tensor<1x2x264xf32>, space = "workspace", offset = 1024 : i64} : () -> ()
// A flagged q (mpk-data-flags) read by an attention without the fused rope, whose
// position load would not follow the polls.
// expected-error@+1 {{cannot lower 'attention_partial' group @attn.partial: flagged q needs the fused rope (mpk-data-flags)}}
"mpk.tasks"() {sym_name = "attn.partial", kind = "attention_partial", grid = array<i64: 1, 2, 2>, tile = array<i64: 1, 1, 132>, inputs = [@q, @kc, @vc, @positions], outputs = [@parts], params = {head_dim = 64 : i64, scale = 0.125 : f32, splits = 2 : i64}} : () -> ()

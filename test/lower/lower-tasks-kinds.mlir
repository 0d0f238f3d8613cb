// One group of each kind besides linear: the device function's characteristic ops.
// RUN: mpk-opt %s -split-input-file --pass-pipeline='builtin.module(mpk-lower-tasks)' | filecheck %s

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "tokens", type = tensor<1xi64>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "table", type = tensor<1000x1024xbf16>, space = "weight", name = "embed"} : () -> ()
"mpk.buffer"() {sym_name = "h", type = tensor<1x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.tasks"() {sym_name = "embed", kind = "embedding", grid = array<i64: 1, 4>, tile = array<i64: 1, 256>, inputs = [@tokens, @table], outputs = [@h], params = {}} : () -> ()
// CHECK-LABEL: func.func @mpk_embedding_0
// CHECK: %[[ID:.*]] = llvm.load %{{.*}} : !llvm.ptr<1> -> i64
// CHECK: arith.trunci %[[ID]] : i64 to i32
// CHECK: llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xbf16>

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x2048xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<128xbf16>, space = "weight", name = "q_norm"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x2048xbf16>, space = "workspace", offset = 4096 : i64} : () -> ()
"mpk.tasks"() {sym_name = "q_norm", kind = "rmsnorm", grid = array<i64: 1, 1>, tile = array<i64: 1, 2048>, inputs = [@q, @w], outputs = [@y], params = {eps = 1.0e-06 : f32}} : () -> ()
// QK-norm: 16 heads of 128 for 16 warps, one head per warp, no barrier.
// CHECK-LABEL: func.func @mpk_rmsnorm_0
// CHECK-NOT: gpu.barrier
// CHECK: gpu.shuffle  xor
// CHECK: llvm.call_intrinsic "llvm.nvvm.rsqrt.approx.f"

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<1024xbf16>, space = "weight", name = "norm"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x1024xbf16>, space = "workspace", offset = 2048 : i64} : () -> ()
"mpk.tasks"() {sym_name = "norm", kind = "rmsnorm", grid = array<i64: 1, 1>, tile = array<i64: 1, 1024>, inputs = [@x, @w], outputs = [@y], params = {eps = 1.0e-06 : f32}} : () -> ()
// A layer norm: the whole CTA reduces one row through shared memory.
// CHECK-LABEL: func.func @mpk_rmsnorm_0
// CHECK: gpu.shuffle  xor
// CHECK: llvm.store {{.*}} : f32, !llvm.ptr<3>
// CHECK: gpu.barrier

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi64>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "k", type = tensor<1x512xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "kr", type = tensor<1x512xbf16>, space = "workspace", offset = 1024 : i64} : () -> ()
"mpk.tasks"() {sym_name = "rope", kind = "rope", grid = array<i64: 1, 1>, tile = array<i64: 1, 512>, inputs = [@k, @positions], outputs = [@kr], params = {inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>}} : () -> ()
// The frequencies are a constant table; angles are reduced before sin/cos.approx.
// CHECK: llvm.mlir.global internal constant @mpk_inv_freq_{{.*}}(dense<[1.000000e+00, 5.000000e-01
// CHECK-LABEL: func.func @mpk_rope_0
// CHECK: llvm.mlir.addressof @mpk_inv_freq_
// CHECK: llvm.call_intrinsic "llvm.nvvm.sin.approx.f"
// CHECK: llvm.call_intrinsic "llvm.nvvm.cos.approx.f"

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x2048xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x1024x1024xbf16>, space = "state", name = "k_cache"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x1024x1024xbf16>, space = "state", name = "v_cache"} : () -> ()
"mpk.buffer"() {sym_name = "o", type = tensor<1x2048xbf16>, space = "workspace", offset = 4096 : i64} : () -> ()
"mpk.tasks"() {sym_name = "attn", kind = "attention", grid = array<i64: 1, 8>, tile = array<i64: 1, 256>, inputs = [@q, @kc, @vc, @positions], outputs = [@o], params = {head_dim = 128 : i64, scale = 0.0883883461 : f32, mma = 1 : i64}} : () -> ()
"mpk.tasks"() {sym_name = "attn_simt", kind = "attention", grid = array<i64: 1, 8>, tile = array<i64: 1, 256>, inputs = [@q, @kc, @vc, @positions], outputs = [@o], params = {head_dim = 128 : i64, scale = 0.0883883461 : f32}} : () -> ()
// GQA (2 query heads per KV head): an online softmax over the cache rows
// (cache loads are coherent: kv_append writes them during the launch), then
// a merge across warps. On the tensor cores (`mma` = 1; the default from 4
// query heads per KV head up): per 8 rows, S = q K^T and O^T += V^T P^T as
// mma.sync, P packed to bf16 in registers.
// CHECK-LABEL: func.func @mpk_attention_0
// CHECK: scf.for {{.*}} iter_args
// CHECK-NOT: invariant
// CHECK: llvm.load {{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xi32>
// CHECK: nvvm.mma.sync
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.f32"
// CHECK: arith.truncf {{.*}} : vector<2xf32> to vector<2xbf16>
// CHECK: nvvm.mma.sync
// CHECK: scf.yield
// CHECK: gpu.barrier
// On the CUDA cores (the default at 2 query heads per KV head): shuffle reductions per row, then
// across the slots of a warp.
// CHECK-LABEL: func.func @mpk_attention_1
// CHECK: scf.for {{.*}} iter_args
// CHECK-NOT: nvvm.mma.sync
// CHECK: llvm.load {{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xbf16>
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.f32"
// CHECK: scf.yield
// CHECK: gpu.shuffle  xor
// CHECK: gpu.barrier

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<1x2048xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "k", type = tensor<1x1024xbf16>, space = "workspace", offset = 4096 : i64} : () -> ()
"mpk.buffer"() {sym_name = "v", type = tensor<1x1024xbf16>, space = "workspace", offset = 6144 : i64} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x1024x1024xbf16>, space = "state", name = "k_cache"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<1x1024x1024xbf16>, space = "state", name = "v_cache"} : () -> ()
"mpk.buffer"() {sym_name = "parts", type = tensor<1x4x2112xf32>, space = "workspace", offset = 8192 : i64} : () -> ()
"mpk.tasks"() {sym_name = "attn.partial", kind = "attention_partial", grid = array<i64: 1, 4, 8>, tile = array<i64: 1, 1, 264>, inputs = [@q, @k, @v, @kc, @vc, @positions], outputs = [@parts, @kc, @vc], params = {head_dim = 128 : i64, scale = 0.0883883461 : f32, splits = 4 : i64, inv_freq = array<f32: 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125>}} : () -> ()
// The rope_append fused in: every split rotates its query heads into shared
// memory; only the split that holds row positions[b] stores k and v there
// (a store under the owner test), then a barrier before the cache rows are
// read. Each warp's loads (its head, the norm weight, the frequencies) and the
// position pass one asm together before their first use: one round trip.
// CHECK-LABEL: func.func @mpk_attention_partial_0
// CHECK: llvm.load {{.*}} : !llvm.ptr<1> -> i32
// CHECK: llvm.inline_asm has_side_effects "mov.b32 $0, $5;
// CHECK: llvm.call_intrinsic "llvm.nvvm.sin.approx.f"
// CHECK: llvm.store {{.*}} : vector<2xbf16>, !llvm.ptr<3>
// CHECK: llvm.inline_asm has_side_effects "mov.b32 $0, $5;
// CHECK: %[[OWNER:.*]] = arith.andi %{{.*}}, %{{.*}} : i1
// CHECK: scf.if %[[OWNER]] {
// CHECK: llvm.store {{.*}} : vector<2xbf16>, !llvm.ptr<1>
// CHECK: llvm.inline_asm has_side_effects
// CHECK: arith.andi %{{.*}}, %{{.*}} : i1
// CHECK: llvm.store {{.*}} : vector<8xbf16>, !llvm.ptr<1>
// CHECK: gpu.barrier
// CHECK: llvm.load {{.*}} : !llvm.ptr<3> -> vector<8xbf16>
// CHECK: scf.for

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "k", type = tensor<1x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<1x1024x1024xbf16>, space = "state", name = "k_cache"} : () -> ()
"mpk.tasks"() {sym_name = "append", kind = "kv_append", grid = array<i64: 1, 4>, tile = array<i64: 1, 256>, domain = array<i64: 1, 1024>, inputs = [@kc, @k, @positions], outputs = [@kc], params = {}} : () -> ()
// CHECK-LABEL: func.func @mpk_kv_append_0
// CHECK: %[[POS:.*]] = llvm.load %{{.*}} : !llvm.ptr<1> -> i32
// CHECK: arith.muli %[[POS]], %{{.*}} : i32
// CHECK: llvm.store {{.*}} {alignment = 16 : i64} : vector<8xbf16>, !llvm.ptr<1>

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "g", type = tensor<1x3072xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "u", type = tensor<1x3072xbf16>, space = "workspace", offset = 6144 : i64} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x3072xbf16>, space = "workspace", offset = 12288 : i64} : () -> ()
"mpk.tasks"() {sym_name = "act", kind = "silu_mul", grid = array<i64: 1, 6>, tile = array<i64: 1, 512>, inputs = [@g, @u], outputs = [@y], params = {}} : () -> ()
// CHECK-LABEL: func.func @mpk_silu_mul_0
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.f32"
// CHECK: arith.divf

// -----

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "logits", type = tensor<1x151936xbf16>, space = "io", per_step} : () -> ()
"mpk.buffer"() {sym_name = "next_tokens", type = tensor<1xi64>, space = "io", per_step} : () -> ()
"mpk.buffer"() {sym_name = "tokens", type = tensor<1xi64>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<1xi64>, space = "io"} : () -> ()
"mpk.tasks"() {sym_name = "argmax", kind = "argmax", grid = array<i64: 1>, tile = array<i64: 1>, inputs = [@logits], outputs = [@next_tokens, @tokens, @positions], params = {}} : () -> ()
// The token goes to next_tokens and tokens; positions advance by one. The
// dispatcher moves the per-step buffers (logits, next_tokens) to copy `step`.
// CHECK-LABEL: func.func @mpk_argmax_0
// CHECK: scf.for {{.*}} iter_args
// CHECK: gpu.barrier
// CHECK: scf.if
// CHECK: arith.extsi %{{.*}} : i32 to i64
// CHECK: llvm.store {{.*}} : i64, !llvm.ptr<1>
// CHECK: llvm.store {{.*}} : i64, !llvm.ptr<1>
// CHECK: %[[P:.*]] = llvm.load %{{.*}} : !llvm.ptr<1> -> i64
// CHECK: %[[P1:.*]] = arith.addi %[[P]], %{{.*}} : i64
// CHECK: llvm.store %[[P1]]
// CHECK-LABEL: func.func @mpk_dispatch
// CHECK: %[[STEP:.*]] = arith.extsi %{{.*}} : i32 to i64
// CHECK: arith.muli %[[STEP]], %{{.*}} : i64
// CHECK: func.call @mpk_argmax_0

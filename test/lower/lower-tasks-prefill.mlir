// The prefill kinds and the sampler: each device function's characteristic ops.
// The prefill program's CTAs: 256 threads (2 warpgroups), 200 KiB of shared memory for a task.
// RUN: mpk-opt %s -split-input-file --pass-pipeline='builtin.module(mpk-lower-tasks{threads=256 smem-bytes=204800})' | filecheck %s

// A GEMM tile of a linear with 256 rows (prefill): tensor maps of x and w recorded on the
// group, TMA copies into a ring of stages on mbarriers, wgmma from shared memory,
// wait for the previous group, a barrier, the refill; the residual in the epilogue.
"mpk.kernel"() {sym_name = "prefill", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<256x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<3072x1024xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "r", type = tensor<256x3072xbf16>, space = "workspace", offset = 524288 : i64} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<256x3072xbf16>, space = "workspace", offset = 2097152 : i64} : () -> ()
"mpk.tasks"() {sym_name = "up", kind = "linear", grid = array<i64: 2, 12>, tile = array<i64: 128, 256>, inputs = [@x, @w, @r], outputs = [@y], params = {}} : () -> ()
// CHECK: kind = "linear", outputs = [@y], params = {}, sym_name = "up", tensor_maps = [array<i64: 0, 128, 64>, array<i64: 1, 256, 64>]
// CHECK-LABEL: func.func @mpk_linear_0(%{{.*}}: i32, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<3>, %{{.*}}: !llvm.ptr<3>)
// CHECK: nvvm.mbarrier.init
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.global>}
// CHECK: nvvm.cp.async.bulk.tensor.shared.cluster.global
// CHECK: scf.for
// CHECK: mbarrier.try_wait.parity
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 256, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: gpu.barrier
// CHECK: nvvm.cp.async.bulk.tensor.shared.cluster.global
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: llvm.load {{.*}} : !llvm.ptr<1> -> vector<2xbf16>
// CHECK: llvm.store {{.*}} : vector<2xbf16>, !llvm.ptr<1>
// CHECK: nvvm.mbarrier.inval

// -----

// Causal attention of 32 rows of one sequence and one KV head with 4 query heads
// (128 matrix rows, 8 warps): q into shared memory then registers, cache rows by
// cp.async, ldmatrix and mma.sync, masked to the row's position.
"mpk.kernel"() {sym_name = "prefill", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "q", type = tensor<256x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "kc", type = tensor<2x512x256xbf16>, space = "state", name = "k_cache"} : () -> ()
"mpk.buffer"() {sym_name = "vc", type = tensor<2x512x256xbf16>, space = "state", name = "v_cache"} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<256xi64>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "o", type = tensor<256x1024xbf16>, space = "workspace", offset = 524288 : i64} : () -> ()
"mpk.tasks"() {sym_name = "attn", kind = "attention_prefill", grid = array<i64: 8, 2>, tile = array<i64: 32, 512>, inputs = [@q, @kc, @vc, @positions], outputs = [@o], params = {head_dim = 128 : i64, scale = 0.0883883461 : f32}} : () -> ()
// CHECK-LABEL: func.func @mpk_attention_prefill_0
// CHECK: nvvm.cp.async.shared.global {{.*}}, 16, cache = cg
// CHECK: nvvm.cp.async.commit.group
// CHECK: scf.for
// CHECK: nvvm.cp.async.wait.group 1
// CHECK: gpu.barrier
// CHECK: nvvm.ldmatrix {{.*}} {eltType = #nvvm.ld_st_matrix_elt_type<b16>, layout = #nvvm.mma_layout<row>, num = 4 : i32, shape = #nvvm.ld_st_matrix_shape<m = 8, n = 8>}
// CHECK: nvvm.mma.sync
// CHECK: arith.cmpi sle
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.f32"
// CHECK: nvvm.ldmatrix {{.*}}layout = #nvvm.mma_layout<col>
// CHECK: nvvm.mma.sync
// CHECK: gpu.barrier
// CHECK: arith.divf

// -----

// The sampler: the argmax, then (temperature > 0) radix selects for top-k and
// top-p over shared-memory histograms, the counter hash and the Gumbel draw.
"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "logits", type = tensor<2x151936xbf16>, space = "io", per_step} : () -> ()
"mpk.buffer"() {sym_name = "positions", type = tensor<2xi64>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "sample_params", type = tensor<2x4xf32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "sample_seeds", type = tensor<2xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "next_tokens", type = tensor<2xi32>, space = "io", per_step} : () -> ()
"mpk.tasks"() {sym_name = "sample", kind = "sample", grid = array<i64: 2>, tile = array<i64: 1>, inputs = [@logits, @positions, @sample_params, @sample_seeds], outputs = [@next_tokens, @positions], params = {}} : () -> ()
// CHECK-LABEL: func.func @mpk_sample_0
// CHECK: arith.constant 2146121005 : i32
// CHECK: scf.if {{.*}} -> (i32)
// CHECK: llvm.atomicrmw add {{.*}} monotonic : !llvm.ptr<3>, i32
// CHECK: gpu.shuffle  up
// CHECK: llvm.atomicrmw fadd {{.*}} monotonic : !llvm.ptr<3>, f32
// CHECK: llvm.call_intrinsic "llvm.nvvm.lg2.approx.f"

// -----

// An MLP's gate and up projections with their SiLU product: the stage holds x and both
// weights' tiles (three tensor maps) one after the other, one wgmma of both (at 256
// threads: 64 x 256, its first 128 columns the gate's), silu(gate) * up in the epilogue.
"mpk.kernel"() {sym_name = "prefill", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<256x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "wg", type = tensor<3072x1024xbf16>, space = "weight", name = "wg"} : () -> ()
"mpk.buffer"() {sym_name = "wu", type = tensor<3072x1024xbf16>, space = "weight", name = "wu"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<256x3072xbf16>, space = "workspace", offset = 524288 : i64} : () -> ()
"mpk.tasks"() {sym_name = "mlp", kind = "gate_up", grid = array<i64: 2, 24>, tile = array<i64: 128, 128>, inputs = [@x, @wg, @wu], outputs = [@y], params = {}} : () -> ()
// CHECK: kind = "gate_up"{{.*}}tensor_maps = [array<i64: 0, 128, 64>, array<i64: 1, 128, 64>, array<i64: 2, 128, 64>]
// CHECK-LABEL: func.func @mpk_gate_up_0
// CHECK-COUNT-3: nvvm.cp.async.bulk.tensor.shared.cluster.global
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}}<m = 64, n = 256, k = 16>
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: llvm.call_intrinsic "llvm.nvvm.ex2.approx.f32"
// CHECK: arith.mulf

// -----

// A GEMM tile of a prefill step with `row_counts`: a tile of padding rows (its offset in
// its sequence's chunk at or past the count) does nothing.
"mpk.kernel"() {sym_name = "prefill", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<512x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<1024x1024xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "row_counts", type = tensor<2xi32>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<512x1024xbf16>, space = "workspace", offset = 1048576 : i64} : () -> ()
"mpk.tasks"() {sym_name = "o", kind = "linear", grid = array<i64: 4, 4>, tile = array<i64: 128, 256>, inputs = [@x, @w, @row_counts], outputs = [@y], params = {row_counts}} : () -> ()
// CHECK-LABEL: func.func @mpk_linear_0
// CHECK: %[[COUNT:.*]] = llvm.load %{{.*}} : !llvm.ptr<1> -> i32
// CHECK: %[[PROMPT:.*]] = arith.cmpi slt, %{{.*}}, %[[COUNT]] : i32
// CHECK: scf.if %[[PROMPT]] {
// CHECK: nvvm.mbarrier.init

// mpk-lower-tasks: one device function per distinct group, `fn` on every
// group, and the dispatcher.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-lower-tasks)' | filecheck %s

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "wq", type = tensor<2048x1024xbf16>, space = "weight", name = "layers.0.q_proj.weight"} : () -> ()
"mpk.buffer"() {sym_name = "wq5", type = tensor<2048x1024xbf16>, space = "weight", name = "layers.5.q_proj.weight"} : () -> ()
"mpk.buffer"() {sym_name = "q0", type = tensor<1x2048xbf16>, space = "workspace", offset = 2048 : i64} : () -> ()
"mpk.buffer"() {sym_name = "q5", type = tensor<1x2048xbf16>, space = "workspace", offset = 6144 : i64} : () -> ()
"mpk.buffer"() {sym_name = "s", type = tensor<1x2048xbf16>, space = "workspace", offset = 10240 : i64} : () -> ()
"mpk.tasks"() {sym_name = "layers.0.q_proj", kind = "linear", grid = array<i64: 1, 16>, tile = array<i64: 1, 128>, inputs = [@x, @wq], outputs = [@q0], params = {}} : () -> ()
"mpk.tasks"() {sym_name = "layers.5.q_proj", kind = "linear", grid = array<i64: 1, 16>, tile = array<i64: 1, 128>, inputs = [@x, @wq5], outputs = [@q5], params = {}} : () -> ()
"mpk.tasks"() {sym_name = "sum", kind = "add", grid = array<i64: 1, 8>, tile = array<i64: 1, 256>, inputs = [@q0, @q5], outputs = [@s], params = {}} : () -> ()

// CHECK: "mpk.kernel"() {{{.*}}smem_bytes = 98304 : i64{{.*}}threads = 512 : i64
// CHECK: "mpk.tasks"() {fn = 0 : i64{{.*}}sym_name = "layers.0.q_proj"
// CHECK: "mpk.tasks"() {fn = 0 : i64{{.*}}sym_name = "layers.5.q_proj"
// CHECK: "mpk.tasks"() {fn = 1 : i64{{.*}}sym_name = "sum"

// CHECK: gpu.module @mpk_tasks
// One warp per row: x staged in shared memory, 16-byte weight loads that may
// use the read-only path, a shuffle reduction.
// CHECK-LABEL: func.func @mpk_linear_0(%{{.*}}: i32, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<3>) attributes {mpk.group = "layers.0.q_proj"}
// CHECK: llvm.store {{.*}} {alignment = 16 : i64} : vector<8xbf16>, !llvm.ptr<3>
// CHECK: gpu.barrier
// CHECK: llvm.load {{.*}} invariant {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xbf16>
// CHECK: vector.fma {{.*}} : vector<8xf32>
// CHECK: gpu.shuffle  xor
// CHECK-NOT: func.func @mpk_linear_1
// CHECK-LABEL: func.func @mpk_add_1
// Activations are written during the launch: coherent loads, no `invariant`.
// CHECK: llvm.load {{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<8xbf16>

// CHECK-LABEL: func.func @mpk_dispatch(%{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// CHECK: llvm.addrspacecast %{{.*}} : !llvm.ptr to !llvm.ptr<3>
// CHECK: scf.index_switch
// CHECK: case 0 {
// CHECK: func.call @mpk_linear_0(
// CHECK: case 1 {
// CHECK: func.call @mpk_add_1(

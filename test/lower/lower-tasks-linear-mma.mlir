// A batch-8 linear on the tensor cores: each weight's MMAs alternate between two
// accumulators (kernels/linear.py MMA_CHAINS), so a k-step's last MMA waits on
// half of them; the two chains are added after the loop.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-lower-tasks)' | filecheck %s

"mpk.kernel"() {sym_name = "decode", num_sms = 132 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<8x1024xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "w", type = tensor<256x1024xbf16>, space = "weight", name = "w"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<8x256xbf16>, space = "workspace", offset = 16384 : i64} : () -> ()
"mpk.tasks"() {sym_name = "proj", kind = "linear", grid = array<i64: 1, 8>, tile = array<i64: 8, 32>, inputs = [@x, @w], outputs = [@y], params = {}} : () -> ()
// CHECK-LABEL: func.func @mpk_linear_0
// CHECK: %[[ACC:.*]]:8 = scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK: nvvm.mma.sync {{.*}} C[%arg{{[0-9]+}},
// CHECK: nvvm.mma.sync {{.*}} C[%arg{{[0-9]+}},
// CHECK-NOT: C[%arg
// CHECK: scf.yield
// CHECK-NEXT: }
// CHECK-NEXT: arith.addf %[[ACC]]#0, %[[ACC]]#4 : f32
// CHECK-NEXT: arith.addf %[[ACC]]#1, %[[ACC]]#5 : f32

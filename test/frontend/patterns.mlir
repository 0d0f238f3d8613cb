// torch-to-mpk patterns on small hand-written torch IR (generic form, as
// torch-mlir prints it), one case per chunk.
// RUN: mpk-opt --allow-unregistered-dialect --split-input-file --pass-pipeline='builtin.module(torch-to-mpk)' %s | filecheck %s

// RMSNorm written out (pow, mean, add eps, rsqrt, two muls), as Hugging Face does.
// CHECK-LABEL: func.func @decomposed_rms_norm
// CHECK-SAME:    (%[[X:.*]]: tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK:         %[[W:.*]] = "mpk.weight"() {name = "norm.weight"} : () -> tensor<8xf32>
// CHECK-NEXT:    %[[Y:.*]] = "mpk.rmsnorm"(%[[X]], %[[W]]) {eps = 9.99999974E-6 : f32}
// CHECK-NEXT:    return %[[Y]]
"func.func"() <{function_type = (!torch.vtensor<[2,8],f32>) -> !torch.vtensor<[2,8],f32>, sym_name = "decomposed_rms_norm"}> ({
^bb0(%x: !torch.vtensor<[2,8],f32>):
  %two = "torch.constant.int"() <{value = 2 : i64}> : () -> !torch.int
  %sq = "torch.aten.pow.Tensor_Scalar"(%x, %two) : (!torch.vtensor<[2,8],f32>, !torch.int) -> !torch.vtensor<[2,8],f32>
  %last = "torch.constant.int"() <{value = -1 : i64}> : () -> !torch.int
  %dims = "torch.prim.ListConstruct"(%last) : (!torch.int) -> !torch.list<int>
  %keepdim = "torch.constant.bool"() <{value = true}> : () -> !torch.bool
  %none = "torch.constant.none"() : () -> !torch.none
  %mean = "torch.aten.mean.dim"(%sq, %dims, %keepdim, %none) : (!torch.vtensor<[2,8],f32>, !torch.list<int>, !torch.bool, !torch.none) -> !torch.vtensor<[2,1],f32>
  %eps = "torch.constant.float"() <{value = 1.0E-5 : f64}> : () -> !torch.float
  %one = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int
  %var = "torch.aten.add.Scalar"(%mean, %eps, %one) : (!torch.vtensor<[2,1],f32>, !torch.float, !torch.int) -> !torch.vtensor<[2,1],f32>
  %inv = "torch.aten.rsqrt"(%var) : (!torch.vtensor<[2,1],f32>) -> !torch.vtensor<[2,1],f32>
  %normed = "torch.aten.mul.Tensor"(%x, %inv) : (!torch.vtensor<[2,8],f32>, !torch.vtensor<[2,1],f32>) -> !torch.vtensor<[2,8],f32>
  %w = "torch.mpk.weight"() {name = "norm.weight"} : () -> !torch.vtensor<[8],f32>
  %y = "torch.aten.mul.Tensor"(%w, %normed) : (!torch.vtensor<[8],f32>, !torch.vtensor<[2,8],f32>) -> !torch.vtensor<[2,8],f32>
  "func.return"(%y) : (!torch.vtensor<[2,8],f32>) -> ()
}) : () -> ()

// -----

// A linear layer after decomposition: x @ w.t() with w [N, K]; the residual
// add stays an mpk.add; a view to [B, H, D] and back is free.
// CHECK-LABEL: func.func @matmul_residual
// CHECK-SAME:    (%[[X:.*]]: tensor<3x8xf32>) -> tensor<3x8xf32>
// CHECK:         %[[W:.*]] = "mpk.weight"() {name = "proj.weight"} : () -> tensor<8x8xf32>
// CHECK-NEXT:    %[[Y:.*]] = "mpk.linear"(%[[X]], %[[W]]) : (tensor<3x8xf32>, tensor<8x8xf32>) -> tensor<3x8xf32>
// CHECK-NEXT:    %[[S:.*]] = "mpk.add"(%[[Y]], %[[X]])
// CHECK-NEXT:    return %[[S]]
"func.func"() <{function_type = (!torch.vtensor<[3,8],f32>) -> !torch.vtensor<[3,8],f32>, sym_name = "matmul_residual"}> ({
^bb0(%x: !torch.vtensor<[3,8],f32>):
  %w = "torch.mpk.weight"() {name = "proj.weight"} : () -> !torch.vtensor<[8,8],f32>
  %wt = "torch.aten.t"(%w) : (!torch.vtensor<[8,8],f32>) -> !torch.vtensor<[8,8],f32>
  %y = "torch.aten.mm"(%x, %wt) : (!torch.vtensor<[3,8],f32>, !torch.vtensor<[8,8],f32>) -> !torch.vtensor<[3,8],f32>
  %c3 = "torch.constant.int"() <{value = 3 : i64}> : () -> !torch.int
  %c2 = "torch.constant.int"() <{value = 2 : i64}> : () -> !torch.int
  %c4 = "torch.constant.int"() <{value = 4 : i64}> : () -> !torch.int
  %shape = "torch.prim.ListConstruct"(%c3, %c2, %c4) : (!torch.int, !torch.int, !torch.int) -> !torch.list<int>
  %heads = "torch.aten.view"(%y, %shape) : (!torch.vtensor<[3,8],f32>, !torch.list<int>) -> !torch.vtensor<[3,2,4],f32>
  %c8 = "torch.constant.int"() <{value = 8 : i64}> : () -> !torch.int
  %flat_shape = "torch.prim.ListConstruct"(%c3, %c8) : (!torch.int, !torch.int) -> !torch.list<int>
  %flat = "torch.aten.view"(%heads, %flat_shape) : (!torch.vtensor<[3,2,4],f32>, !torch.list<int>) -> !torch.vtensor<[3,8],f32>
  %one = "torch.constant.int"() <{value = 1 : i64}> : () -> !torch.int
  %s = "torch.aten.add.Tensor"(%flat, %x, %one) : (!torch.vtensor<[3,8],f32>, !torch.vtensor<[3,8],f32>, !torch.int) -> !torch.vtensor<[3,8],f32>
  "func.return"(%s) : (!torch.vtensor<[3,8],f32>) -> ()
}) : () -> ()

// -----

// SiLU-times-up, and argmax keeping torch's int64 index type when not cast.
// CHECK-LABEL: func.func @silu_mul_argmax
// CHECK-SAME:    (%[[G:.*]]: tensor<1x6xf32>, %[[U:.*]]: tensor<1x6xf32>) -> tensor<1xi64>
// CHECK-NEXT:    %[[A:.*]] = "mpk.silu_mul"(%[[G]], %[[U]])
// CHECK-NEXT:    %[[I:.*]] = "mpk.argmax"(%[[A]]) : (tensor<1x6xf32>) -> tensor<1xi64>
// CHECK-NEXT:    return %[[I]]
"func.func"() <{function_type = (!torch.vtensor<[1,6],f32>, !torch.vtensor<[1,6],f32>) -> !torch.vtensor<[1],si64>, sym_name = "silu_mul_argmax"}> ({
^bb0(%g: !torch.vtensor<[1,6],f32>, %u: !torch.vtensor<[1,6],f32>):
  %s = "torch.aten.silu"(%g) : (!torch.vtensor<[1,6],f32>) -> !torch.vtensor<[1,6],f32>
  %a = "torch.aten.mul.Tensor"(%s, %u) : (!torch.vtensor<[1,6],f32>, !torch.vtensor<[1,6],f32>) -> !torch.vtensor<[1,6],f32>
  %last = "torch.constant.int"() <{value = -1 : i64}> : () -> !torch.int
  %false = "torch.constant.bool"() <{value = false}> : () -> !torch.bool
  %i = "torch.aten.argmax"(%a, %last, %false) : (!torch.vtensor<[1,6],f32>, !torch.int, !torch.bool) -> !torch.vtensor<[1],si64>
  "func.return"(%i) : (!torch.vtensor<[1],si64>) -> ()
}) : () -> ()

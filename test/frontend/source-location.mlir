// The error points at the Python line the op came from (torch-mlir keeps the
// FX node's stack trace as the op's location; mpk.frontend keeps user frames).
// RUN: not mpk-opt --allow-unregistered-dialect --pass-pipeline='builtin.module(torch-to-mpk)' %s 2>&1 | filecheck %s
// CHECK: mpk/models/model.py:84:0: error: unsupported op torch.aten.gelu (no torch-to-mpk pattern)
// CHECK-NOT: Traceback

"func.func"() <{function_type = (!torch.vtensor<[2,8],f32>) -> !torch.vtensor<[2,8],f32>, sym_name = "gelu"}> ({
^bb0(%x: !torch.vtensor<[2,8],f32>):
  %none = "torch.constant.str"() <{value = "none"}> : () -> !torch.str loc("mpk/models/model.py":84:0)
  %y = "torch.aten.gelu"(%x, %none) : (!torch.vtensor<[2,8],f32>, !torch.str) -> !torch.vtensor<[2,8],f32> loc(callsite("mpk/models/model.py":84:0 at "mpk/models/model.py":99:0))
  "func.return"(%y) : (!torch.vtensor<[2,8],f32>) -> ()
}) : () -> ()

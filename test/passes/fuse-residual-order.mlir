// mpk-fuse-residual rewrites graph IR: on task IR it says so, at the kernel header.
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-residual)' 2>&1 | filecheck %s
// CHECK: fuse-residual-order.mlir:[[# @LINE + 1]]:1: error: mpk-fuse-residual rewrites graph IR: run it before 'mpk-partition'
"mpk.kernel"() {sym_name = "decode", num_sms = 4 : i64, arch = "sm_90"} : () -> ()

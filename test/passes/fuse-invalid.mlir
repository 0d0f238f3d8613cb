// The fusion passes rewrite graph IR: on task IR each says so at the kernel header.
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-gate-up)' 2>&1 | filecheck %s --check-prefix=GATEUP
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-norm)' 2>&1 | filecheck %s --check-prefix=NORM
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-silu)' 2>&1 | filecheck %s --check-prefix=SILU
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-fuse-rope-append)' 2>&1 | filecheck %s --check-prefix=ROPE

// GATEUP: fuse-invalid.mlir:[[# @LINE + 4]]:1: error: mpk-fuse-gate-up rewrites graph IR: run it before 'mpk-partition'
// NORM: fuse-invalid.mlir:[[# @LINE + 3]]:1: error: mpk-fuse-norm rewrites graph IR: run it before 'mpk-partition'
// SILU: fuse-invalid.mlir:[[# @LINE + 2]]:1: error: mpk-fuse-silu rewrites graph IR: run it before 'mpk-partition'
// ROPE: fuse-invalid.mlir:[[# @LINE + 1]]:1: error: mpk-fuse-rope-append rewrites graph IR: run it before 'mpk-partition'
"mpk.kernel"() {sym_name = "decode_step", num_sms = 2 : i64, arch = "sm_90"} : () -> ()

// Input that is not UTF-8 is one located error, not a traceback (issue 16):
// the position of the first byte that is not UTF-8.
// RUN: printf '"mpk.kernel"() {sym_name = "k\377", num_sms = 2 : i64, arch = "sm_90"} : () -> ()\n' > %t.mlir
// RUN: not mpk-opt %t.mlir 2>&1 | filecheck %s
// RUN: not mpk-opt < %t.mlir 2>&1 | filecheck %s --check-prefix=STDIN

// CHECK: regress-not-utf8.mlir.tmp.mlir:1:30: error: expected UTF-8 text, got the byte 0xff
// CHECK-NOT: Traceback
// STDIN: <stdin>:1:30: error: expected UTF-8 text, got the byte 0xff

// Brackets nested thousands deep overflow the stack of MLIR's recursive parser
// (a segmentation fault): mpk-opt refuses more than 1000, located (issue 16).
// RUN: %python -c "print('\"mpk.kernel\"() {sym_name = \"k\", num_sms = 2 : i64, arch = \"sm_90\", x = ' + '[' * 20000 + ']' * 20000 + '} : () -> ()')" > %t.mlir
// RUN: not mpk-opt %t.mlir 2>&1 | filecheck %s
// CHECK: .mlir:1:1071: error: expected at most 1000 nested brackets, got more

// `mpk compile` on graph IR that does not verify: the verifier's diagnostic at file:line:col, exit 1.
// RUN: not mpk compile %S/Inputs/bad-eps.mlir -o %t.mpk --quiet 2>&1 | filecheck %s
// CHECK: mpk compile: error: graph: {{.*}}bad-eps.mlir is not valid mpk graph IR
// CHECK-NEXT: bad-eps.mlir:2:8: error: 'eps' must be positive
// CHECK-NOT: Traceback

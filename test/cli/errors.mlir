// mpk-opt's error paths: a diagnostic at file:line:col, exit code 1, never a traceback.

// Malformed IR.
// RUN: not mpk-opt %s 2>&1 | filecheck %s --check-prefix=SYNTAX
// SYNTAX: errors.mlir:[[# @LINE + 4]]:3: error: custom op 'mpk_not_an_op' is unknown
// SYNTAX-NEXT: {{^}}  mpk_not_an_op
// SYNTAX-NEXT: {{^}}  ^
// SYNTAX-NOT: Traceback
  mpk_not_an_op

// The same from stdin.
// RUN: cat %s | not mpk-opt 2>&1 | filecheck %s --check-prefix=STDIN
// STDIN: <stdin>:[[# @LINE - 4]]:3: error: custom op

// An unknown pass, a bad option, a bad value: one line each, exit 1.
// RUN: not mpk-opt %S/Inputs/valid.mlir --pass-pipeline='builtin.module(no-such-pass)' 2>&1 | filecheck %s --check-prefix=PASS
// PASS: mpk-opt: error: in pipeline element 'no-such-pass': 'no-such-pass' does not refer to a registered pass or pass pipeline
// RUN: not mpk-opt %S/Inputs/valid.mlir --pass-pipeline='builtin.module(mpk-verify{bogus=1})' 2>&1 | filecheck %s --check-prefix=OPTION
// OPTION: mpk-opt: error: 'mpk-verify' has no option 'bogus' (options: none)
// RUN: not mpk-opt %S/Inputs/valid.mlir --pass-pipeline='builtin.module(canonicalize{bogus=1})' 2>&1 | filecheck %s --check-prefix=UPSTREAM
// UPSTREAM: mpk-opt: error: in pipeline element 'canonicalize{bogus=1}'
// RUN: not mpk-opt %S/Inputs/valid.mlir --pass-pipeline='builtin.module(canonicalize' 2>&1 | filecheck %s --check-prefix=UNBALANCED
// UNBALANCED: mpk-opt: error: unbalanced brackets or quotes in pipeline

// A missing input file.
// RUN: not mpk-opt %S/Inputs/does-not-exist.mlir 2>&1 | filecheck %s --check-prefix=MISSING
// MISSING: mpk-opt: error: cannot read '{{.*}}does-not-exist.mlir': No such file or directory

// A failing pass reports at the op's location: verification skipped at parse
// time (--no-verify) so that the mpk-verify pass is the one that fails.
// RUN: not mpk-opt %S/Inputs/bad-eps.mlir --no-verify --pass-pipeline='builtin.module(mpk-verify)' 2>&1 | filecheck %s --check-prefix=FAILPASS
// FAILPASS: bad-eps.mlir:2:8: error: 'eps' must be positive
// FAILPASS-NOT: Traceback

// -verify-diagnostics fails (exit 1) when an expected diagnostic is missing or one is unexpected.
// RUN: not mpk-opt %S/Inputs/wrong-expectation.mlir -verify-diagnostics 2>&1 | filecheck %s --check-prefix=VERIFY
// VERIFY-DAG: wrong-expectation.mlir:3:8: error: unexpected error: 'eps' must be positive
// VERIFY-DAG: wrong-expectation.mlir:3: error: expected error "this text is not in the message" was not produced

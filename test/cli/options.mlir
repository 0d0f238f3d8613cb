// mpk-opt's options behave like mlir-opt's.

// -o writes the output file.
// RUN: mpk-opt %s -o %t.mlir && filecheck %s --check-prefix=ROUNDTRIP < %t.mlir
// ROUNDTRIP: "mpk.add"

// IR printing goes to stderr, named after each pass.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-verify,canonicalize)' --mlir-print-ir-after-all -o /dev/null 2>&1 | filecheck %s --check-prefix=AFTERALL
// AFTERALL: IR Dump After mpk-verify
// AFTERALL: IR Dump After Canonicalizer (canonicalize)
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-verify,canonicalize)' --mlir-print-ir-before=canonicalize --mlir-print-ir-after=mpk-verify -o /dev/null 2>&1 | filecheck %s --check-prefix=SELECTED
// SELECTED: IR Dump After mpk-verify
// SELECTED-NEXT: module
// SELECTED: IR Dump Before canonicalize
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(canonicalize)' --mlir-print-ir-after=cse 2>&1 | filecheck %s --check-prefix=NOTINPIPE
// NOTINPIPE: error: --mlir-print-ir-before/after names cse, not a pass of this pipeline (canonicalize)

// Generic form.
// RUN: mpk-opt %s --mlir-print-op-generic | filecheck %s --check-prefix=GENERIC
// GENERIC: "func.func"() <{function_type

// Mixed pipelines: an mpk pass, an upstream pass, a nested upstream pipeline.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-verify,func.func(cse),canonicalize,mpk-verify)' | filecheck %s --check-prefix=MIXED
// MIXED: "mpk.add"

// --help lists the registered mpk passes.
// RUN: mpk-opt --help | filecheck %s --check-prefix=HELP
// HELP: registered mpk passes
// HELP: mpk-verify

func.func @f(%a: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %0 = "mpk.add"(%a, %a) : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

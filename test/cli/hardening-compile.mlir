// `mpk compile`'s input errors: one error line (MLIR's at file:line:col), exit 1, no traceback.

// Malformed graph IR: the parser's diagnostic with the source line and a caret.
// RUN: not mpk compile %s -o %t.mpk --quiet 2>&1 | filecheck %s --check-prefix=SYNTAX
// SYNTAX: mpk compile: error: graph: {{.*}}hardening-compile.mlir is not valid mpk graph IR
// SYNTAX-NEXT: {{^}}  {{.*}}hardening-compile.mlir:[[# @LINE + 4]]:1: error: custom op 'mpk_not_an_op' is unknown
// SYNTAX-NEXT: {{^}}  mpk_not_an_op
// SYNTAX-NEXT: {{^}}  ^
// SYNTAX-NOT: Traceback
mpk_not_an_op

// A file that is not text: where the first byte that is not UTF-8 is.
// RUN: printf 'module {\n\377\n' > %t.binary.mlir
// RUN: not mpk compile %t.binary.mlir -o %t.mpk --quiet 2>&1 | filecheck %s --check-prefix=BINARY
// BINARY: mpk compile: error: {{.*}}.binary.mlir:2: not UTF-8 text (byte 9 is 0xff)
// BINARY-NOT: Traceback

// An output folder that is not a bundle: refused before the model is even imported.
// RUN: rm -rf %t.dir && mkdir -p %t.dir && touch %t.dir/notes.txt
// RUN: not mpk compile --model qwen3-tiny -o %t.dir --quiet 2>&1 | filecheck %s --check-prefix=OUTPUT
// OUTPUT: mpk compile: error: {{.*}}.dir exists and is not a bundle; not overwriting it
// OUTPUT-NOT: Traceback

// An architecture mpk has no kernels for.
// RUN: not mpk compile --model qwen3-tiny --arch sm_80 -o %t.mpk --quiet 2>&1 | filecheck %s --check-prefix=ARCH
// ARCH: mpk compile: error: unknown GPU architecture 'sm_80' (mpk compiles for sm_90)

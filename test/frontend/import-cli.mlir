// `mpk import`: a config.json no test has seen, and the error paths (one
// line, exit code 1, no traceback).

// RUN: mpk import --quiet --config %S/Inputs/qwen3-config.json --batch 2 --max-seq 8 | filecheck %s
// CHECK:      func.func @decode_step(%{{.*}}: tensor<2xi64>, %{{.*}}: tensor<2xi64>) -> (tensor<2xi32>, tensor<2x320xf32>)
// CHECK:      "mpk.rmsnorm"(%{{.*}}) {{.*}} : (tensor<2x48xf32>, tensor<8xf32>)
// CHECK:      "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<2x8x16xf32>
// CHECK:      "mpk.attention"({{.*}}) {head_dim = 8 : i64, {{.*}}} : (tensor<2x48xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2xi64>)
// CHECK:      "mpk.weight"() {name = "lm_head.weight"} : () -> tensor<320x48xf32>

// RUN: mpk import --quiet --model qwen3-tiny -o %t.mlir && filecheck %s --check-prefix=FILE < %t.mlir
// FILE: "mpk.argmax"

// RUN: not mpk import --model qwen9 2>&1 | filecheck %s --check-prefix=UNKNOWN
// UNKNOWN: mpk import: error: unknown model 'qwen9'; known: qwen3-0.6b,
// UNKNOWN-NOT: Traceback

// RUN: not mpk import --config %S/Inputs/unsupported-family.json 2>&1 | filecheck %s --check-prefix=FAMILY
// FAMILY: mpk import: error: {{.*}}unsupported-family.json: model_type 'mistral' is not supported (supported: qwen3, llama)

// RUN: not mpk import --config %S/Inputs/bad-heads.json 2>&1 | filecheck %s --check-prefix=HEADS
// HEADS: mpk import: error: {{.*}}bad-heads.json: num_heads (6) must be a multiple of num_kv_heads (4)

// RUN: not mpk import --config %S/Inputs/bad-rope.json 2>&1 | filecheck %s --check-prefix=ROPE
// ROPE: mpk import: error: {{.*}}bad-rope.json: rope_scaling type 'yarn' is not supported (supported: llama3)

// RUN: not mpk import --config %S/Inputs/not-json.json 2>&1 | filecheck %s --check-prefix=JSON
// JSON: mpk import: error: {{.*}}not-json.json: cannot read a JSON config: Expecting

// RUN: not mpk import --config %S/Inputs/missing.json 2>&1 | filecheck %s --check-prefix=MISSING
// MISSING: mpk import: error: {{.*}}missing.json: cannot read a JSON config: [Errno 2] No such file or directory

// RUN: not mpk import --model qwen3-tiny --batch 0 2>&1 | filecheck %s --check-prefix=BATCH
// BATCH: mpk import: error: argument --batch: must be positive, got 0

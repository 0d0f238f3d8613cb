// mpk-partition on dimensions smaller than the kind's tile unit (issue 16: a
// vocabulary of one token, a width under 8): the tile is the whole dimension.
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-verify)' | filecheck %s

// CHECK-DAG: "mpk.tasks"() {{{.*}}kind = "add"{{.*}}tile = array<i64: 1, 4>
// CHECK-DAG: "mpk.tasks"() {{{.*}}kind = "linear"{{.*}}tile = array<i64: 1, 1>
// CHECK-DAG: "mpk.tasks"() {{{.*}}kind = "argmax"{{.*}}tile = array<i64: 1>
func.func @decode_step(%ids: tensor<1xi32>) -> tensor<1xi32> {
  %table = "mpk.weight"() {name = "embed.weight"} : () -> tensor<1x4xf32>
  %h = "mpk.embedding"(%ids, %table) : (tensor<1xi32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  %s = "mpk.add"(%h, %h) : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  %w = "mpk.weight"() {name = "lm_head.weight"} : () -> tensor<1x4xf32>
  %logits = "mpk.linear"(%s, %w) : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x1xf32>
  %next = "mpk.argmax"(%logits) : (tensor<1x1xf32>) -> tensor<1xi32>
  return %next : tensor<1xi32>
}

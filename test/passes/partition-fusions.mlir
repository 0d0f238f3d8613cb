// RUN: mpk-opt %s --pass-pipeline='builtin.module(%fusions,mpk-partition,mpk-verify)' | filecheck %s

// A layer norm read only by linears becomes part of them (`norm_eps`, its
// weight as the last input); decode attention at batch 1 over 8 KV heads is
// split 16 ways (128 tasks on 132 SMs), the last split of each KV head
// merging the 16 partial rows (`attention_split`, its arrival counters in
// space "counters").

// CHECK-NOT: kind = "rmsnorm"
// CHECK: "mpk.tasks"() {{{.*}}inputs = [@input0, @wq.weight, @norm.weight], kind = "linear"{{.*}}params = {norm_eps = 9.99999997E-7 : f32}
// CHECK: "mpk.tasks"() {{{.*}}inputs = [@input0, @wk.weight, @norm.weight], kind = "linear"
// CHECK: "mpk.buffer"() {space = "workspace", sym_name = "layers.0.attention.partials", type = tensor<1x16x4224xf32>}
// CHECK: "mpk.buffer"() {space = "counters", sym_name = "layers.0.attention.arrivals", type = tensor<1x8xi32>}
// CHECK: "mpk.tasks"() {grid = array<i64: 1, 16, 8>, inputs = [@wq.out, @layers.0.k_cache, @layers.0.v_cache, @positions], kind = "attention_split", outputs = [@layers.0.attention.partials, @layers.0.attention.out, @layers.0.attention.arrivals]{{.*}}splits = 16 : i64{{.*}}tile = array<i64: 1, 1, 528>}
// CHECK-NOT: kind = "attention_combine"
func.func @decode_step(%x: tensor<1x4096xbf16>, %pos: tensor<1xi32>) -> tensor<1x4096xbf16> {
  %nw = "mpk.weight"() {name = "norm.weight"} : () -> tensor<4096xbf16>
  %h = "mpk.rmsnorm"(%x, %nw) {eps = 1.0e-06 : f32} : (tensor<1x4096xbf16>, tensor<4096xbf16>) -> tensor<1x4096xbf16>
  %wq = "mpk.weight"() {name = "wq.weight"} : () -> tensor<4096x4096xbf16>
  %wk = "mpk.weight"() {name = "wk.weight"} : () -> tensor<1024x4096xbf16>
  %q = "mpk.linear"(%h, %wq) : (tensor<1x4096xbf16>, tensor<4096x4096xbf16>) -> tensor<1x4096xbf16>
  %k = "mpk.linear"(%h, %wk) : (tensor<1x4096xbf16>, tensor<1024x4096xbf16>) -> tensor<1x1024xbf16>
  %kc = "mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<1x4096x1024xbf16>
  %vc = "mpk.state"() {name = "layers.0.v_cache"} : () -> tensor<1x4096x1024xbf16>
  %kc1 = "mpk.kv_append"(%kc, %k, %pos) : (tensor<1x4096x1024xbf16>, tensor<1x1024xbf16>, tensor<1xi32>) -> tensor<1x4096x1024xbf16>
  %o = "mpk.attention"(%q, %kc1, %vc, %pos) {head_dim = 128 : i64, scale = 0.0884 : f32} : (tensor<1x4096xbf16>, tensor<1x4096x1024xbf16>, tensor<1x4096x1024xbf16>, tensor<1xi32>) -> tensor<1x4096xbf16>
  return %o : tensor<1x4096xbf16>
}

// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-verify)' | filecheck %s
// RUN: mpk-opt %s --pass-pipeline='builtin.module(mpk-partition{shared-tile-max-bytes=65536},mpk-verify)' \
// RUN:   | filecheck %s --check-prefix=TWOWAVES

// Llama 3.2 1B's q, k and v at batch 1 share the SMs: by default one wave of 32-row
// tiles (128 KB of weights each). With shared-tile-max-bytes=65536 (round 11's rule,
// the runtime's prefetch bound) a tile of more than that and at most twice it
// takes two waves of 16-row tiles (bench/NOTES.md rounds 11 and 25).
// CHECK: kind = "linear", outputs = [@q_proj.out], params = {}, sym_name = "q_proj", tile = array<i64: 1, 32>}
// CHECK: kind = "linear", outputs = [@k_proj.out], params = {}, sym_name = "k_proj", tile = array<i64: 1, 32>}
// TWOWAVES: kind = "linear", outputs = [@q_proj.out], params = {}, sym_name = "q_proj", tile = array<i64: 1, 16>}
// TWOWAVES: kind = "linear", outputs = [@k_proj.out], params = {}, sym_name = "k_proj", tile = array<i64: 1, 16>}
func.func @decode_step(%x: tensor<1x2048xbf16>) -> (tensor<1x2048xbf16>, tensor<1x512xbf16>, tensor<1x512xbf16>) {
  %wq = "mpk.weight"() {name = "q_proj.weight"} : () -> tensor<2048x2048xbf16>
  %wk = "mpk.weight"() {name = "k_proj.weight"} : () -> tensor<512x2048xbf16>
  %wv = "mpk.weight"() {name = "v_proj.weight"} : () -> tensor<512x2048xbf16>
  %q = "mpk.linear"(%x, %wq) : (tensor<1x2048xbf16>, tensor<2048x2048xbf16>) -> tensor<1x2048xbf16>
  %k = "mpk.linear"(%x, %wk) : (tensor<1x2048xbf16>, tensor<512x2048xbf16>) -> tensor<1x512xbf16>
  %v = "mpk.linear"(%x, %wv) : (tensor<1x2048xbf16>, tensor<512x2048xbf16>) -> tensor<1x512xbf16>
  %a = "mpk.add"(%q, %q) : (tensor<1x2048xbf16>, tensor<1x2048xbf16>) -> tensor<1x2048xbf16>
  %b = "mpk.add"(%k, %v) : (tensor<1x512xbf16>, tensor<1x512xbf16>) -> tensor<1x512xbf16>
  return %a, %b, %v : tensor<1x2048xbf16>, tensor<1x512xbf16>, tensor<1x512xbf16>
}

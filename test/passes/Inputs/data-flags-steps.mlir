// A launch of 2^16 steps or more: step s's flag (s + 1) would not fit 16 bits
// (data-flags-invalid.mlir runs it; the task IR of data-flags.mlir after mpk-build-events).
#map = affine_map<(d0, d1) -> (0)>
module {
  // expected-error@below {{a launch of 65536 steps or more would repeat a 16-bit flag}}
  "mpk.kernel"() {arch = "sm_90", num_sms = 132 : i64, steps = 65536 : i64, sym_name = "decode_step"} : () -> ()
  "mpk.buffer"() {space = "io", sym_name = "tokens", type = tensor<1xi32>} : () -> ()
  "mpk.buffer"() {name = "embed.weight", space = "weight", sym_name = "embed.weight", type = tensor<100x64xbf16>} : () -> ()
  "mpk.buffer"() {space = "workspace", sym_name = "embed.out", type = tensor<1x64xbf16>} : () -> ()
  "mpk.event"() {primed, size = 1 : i64, sym_name = "step", triggers = 4 : i64} : () -> ()
  "mpk.event"() {size = 1 : i64, sym_name = "ready.a", triggers = 1 : i64} : () -> ()
  "mpk.event"() {size = 1 : i64, sym_name = "ready.b", triggers = 8 : i64} : () -> ()
  "mpk.event"() {size = 1 : i64, sym_name = "ready.c", triggers = 4 : i64} : () -> ()
  "mpk.tasks"() {grid = array<i64: 1, 1>, inputs = [@tokens, @embed.weight], kind = "embedding", outputs = [@embed.out], params = {}, sym_name = "embed", tile = array<i64: 1, 64>, trigger = [@ready.a, #map], wait = [@step, #map]} : () -> ()
  "mpk.buffer"() {name = "a.weight", space = "weight", sym_name = "a.weight", type = tensor<128x64xbf16>} : () -> ()
  "mpk.buffer"() {name = "b.weight", space = "weight", sym_name = "b.weight", type = tensor<64x128xbf16>} : () -> ()
  "mpk.buffer"() {name = "c.weight", space = "weight", sym_name = "c.weight", type = tensor<64x64xbf16>} : () -> ()
  "mpk.buffer"() {space = "workspace", sym_name = "a.out", type = tensor<1x128xbf16>} : () -> ()
  "mpk.tasks"() {grid = array<i64: 1, 8>, inputs = [@embed.out, @a.weight], kind = "linear", outputs = [@a.out], params = {}, sym_name = "a", tile = array<i64: 1, 16>, trigger = [@ready.b, #map], wait = [@ready.a, #map]} : () -> ()
  "mpk.buffer"() {space = "workspace", sym_name = "b.out", type = tensor<1x64xbf16>} : () -> ()
  "mpk.tasks"() {grid = array<i64: 1, 4>, inputs = [@a.out, @b.weight, @embed.out], kind = "linear", outputs = [@b.out], params = {}, sym_name = "b", tile = array<i64: 1, 16>, trigger = [@ready.c, #map], wait = [@ready.b, #map]} : () -> ()
  "mpk.buffer"() {per_step, space = "io", sym_name = "logits", type = tensor<1x64xbf16>} : () -> ()
  "mpk.tasks"() {grid = array<i64: 1, 4>, inputs = [@b.out, @c.weight], kind = "linear", outputs = [@logits], params = {}, sym_name = "c", tile = array<i64: 1, 16>, trigger = [@step, #map], wait = [@ready.c, #map]} : () -> ()
}

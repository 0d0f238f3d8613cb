// The weight ring is whole 128-byte lines (the runtime lays its chunks on them);
// mpk-stage-weights{ring-bytes=1000} (run by stage-weights-invalid.mlir).
// expected-error@below {{ring-bytes must be 0 or a positive multiple of 128, not 1000}}
module {
  "mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
}

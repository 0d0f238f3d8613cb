// At batch 1 mpk-data-flags (on by default) flags every hop of a decoder layer,
// the attention's too: q/k/v -> attention and attention -> o_proj lose their
// counters; at batch 8 too (max-rows 8: the tiny model's x is far below its
// max-x-bytes); --data-flags 0 keeps them, --data-flags 4 at batch 8 as well.
// RUN: rm -rf %t.stages %t.mpk && mpk compile --model qwen3-tiny --max-seq 1024 --steps 4 --prefill-chunk 0 --dump-dir %t.stages -o %t.mpk 2>&1 | filecheck %s --check-prefix=REPORT
// RUN: filecheck %s --check-prefix=EVENTS < %t.stages/2-events.mlir
// RUN: filecheck %s < %t.stages/4-gpu.mlir
// RUN: rm -rf %t.off.mpk && mpk compile --model qwen3-tiny --max-seq 1024 --steps 4 --prefill-chunk 0 --data-flags 0 -o %t.off.mpk 2>&1 | filecheck %s --check-prefix=OFF
// RUN: rm -rf %t.b8.mpk && mpk compile --model qwen3-tiny --batch 8 --max-seq 1024 --steps 4 --prefill-chunk 0 -o %t.b8.mpk 2>&1 | filecheck %s --check-prefix=REPORT8
// RUN: rm -rf %t.b8off.mpk && mpk compile --model qwen3-tiny --batch 8 --max-seq 1024 --steps 4 --prefill-chunk 0 --data-flags 4 -o %t.b8off.mpk 2>&1 | filecheck %s --check-prefix=NONE

// At batch 1 the readers of a flagged x load their first weights early, but not
// o_proj (after the attention): q/k/v, gate_up and down of layer 1, gate_up and
// down of layer 0 (its q/k/v read the embedding's output) and the lm_head.
// REPORT: mpk-data-flags: 14 flagged buffers, 9 of 13 events without a counter, 8 groups load weights early
// REPORT8: mpk-data-flags: 14 flagged buffers, 9 of 13 events without a counter, 0 groups load weights early
// OFF-NOT: mpk-data-flags
// NONE: mpk-data-flags: 0 flagged buffers, 0 of 13 events without a counter
// EVENTS-DAG: "mpk.event"() {flagged, size = 2 : i64, sym_name = "ready.layers.1.attention"
// EVENTS-DAG: "mpk.event"() {flagged, size = 1 : i64, sym_name = "ready.model.layers.1.self_attn.o_proj"
// EVENTS-DAG: "mpk.buffer"() {flagged, space = "workspace", sym_name = "layers.1.attention.out"

// The attention polls its q/k/v words, then loads the position at GPU scope (its
// L1 may hold the last step's), arrives (acquire-release), and the last split
// stores the merged output as flagged words.
// CHECK-LABEL: func.func @mpk_attention_split_{{[0-9]+}}(
// CHECK-SAME: %{{[a-z0-9]+}}: i32, %{{[a-z0-9]+}}: !llvm.ptr<3>) attributes {mpk.group = "layers.0.attention"}
// CHECK: scf.while
// CHECK: ld.relaxed.gpu.global.u32
// CHECK: nanosleep
// CHECK: ld.relaxed.gpu.global.u32
// CHECK: atom.acq_rel.gpu.add.u32
// CHECK: st.relaxed.gpu.global.v4.u32
// CHECK-LABEL: func.func @mpk_attention_split_{{[0-9]+}}_prefetch(

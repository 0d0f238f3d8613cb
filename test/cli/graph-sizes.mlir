// A graph file's batch and KV cache length are its caches' own: `mpk compile
// graph.mlir` records them in the bundle's plan (read from the compiled IR, not
// from option defaults), and --batch / --max-seq may only repeat them.
// RUN: mpk import --model qwen3-tiny --batch 2 --max-seq 64 -o %t.mlir
// RUN: rm -rf %t.mpk && mpk compile %t.mlir -o %t.mpk --quiet --prefill-chunk 0
// RUN: %python -c "import json, sys; p = json.load(open(sys.argv[1])); print('batch', p['batch'], 'max_seq', p['max_seq'])" %t.mpk/plan.json | filecheck %s
// CHECK: batch 2 max_seq 64
// RUN: not mpk compile %t.mlir --max-seq 4096 -o %t.other.mpk --quiet 2>&1 | filecheck %s --check-prefix=ASKED
// ASKED: mpk compile: error: {{.*}}.mlir: its KV caches are for --max-seq 64, not 4096 (a graph file's sizes are fixed: leave --max-seq out)
// ASKED-NOT: Traceback

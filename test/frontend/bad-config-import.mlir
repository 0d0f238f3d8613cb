// `mpk import` and `mpk compile` refuse configs mpk would misread or cannot lower:
// one line naming the file and the field, exit code 1, no traceback (issue 16).

// RUN: echo '{"model_type": "llama", "vocab_size": 64, "hidden_size": "64", "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4}' > %t.size.json
// RUN: not mpk import --config %t.size.json 2>&1 | filecheck %s --check-prefix=SIZE
// SIZE: mpk import: error: {{.*}}.size.json: hidden_size must be an integer, got "64"
// SIZE-NOT: Traceback

// RUN: echo '{"model_type": "llama", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 0}' > %t.kv.json
// RUN: not mpk import --config %t.kv.json 2>&1 | filecheck %s --check-prefix=KV
// KV: mpk import: error: {{.*}}.kv.json: num_kv_heads must be positive, got 0 (num_key_value_heads in {{.*}}.kv.json)

// RUN: echo '{"model_type": "qwen3", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "head_dim": 16, "hidden_act": "gelu"}' > %t.act.json
// RUN: not mpk import --config %t.act.json 2>&1 | filecheck %s --check-prefix=ACT
// ACT: mpk import: error: {{.*}}.act.json: hidden_act = "gelu": activations other than silu are not supported

// RUN: echo '{"model_type": "qwen3", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "head_dim": 16, "use_sliding_window": true}' > %t.swa.json
// RUN: not mpk import --config %t.swa.json 2>&1 | filecheck %s --check-prefix=SWA
// SWA: mpk import: error: {{.*}}.swa.json: use_sliding_window = true: sliding-window attention is not supported

// RUN: echo '[{"model_type": "llama"}]' > %t.list.json
// RUN: not mpk import --config %t.list.json 2>&1 | filecheck %s --check-prefix=LIST
// LIST: mpk import: error: {{.*}}.list.json: the top level must be a JSON object, got [{"model_type": "llama"}]

// RUN: echo '{"model_type": "llama", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "head_dim": 12}' > %t.hd12.json
// RUN: not mpk import --config %t.hd12.json 2>&1 | filecheck %s --check-prefix=HD-IMPORT
// HD-IMPORT: mpk import: error: {{.*}}.hd12.json: head_dim 12 cannot be lowered with float32 weights: {{.*}}(head_dim must be one of 4, 8, 16, 32, 64, 128)
// RUN: not mpk compile --quiet --config %t.hd12.json -o %t.mpk 2>&1 | filecheck %s --check-prefix=HD-COMPILE
// HD-COMPILE: mpk compile: error: {{.*}}.hd12.json: head_dim 12 cannot be lowered with bfloat16 weights
// HD-COMPILE-NOT: Traceback

#!/usr/bin/env bash
# On the compiling machine (MLIR, no GPU needed): every bundle the GPU checks
# (run_on_gpu.sh) use, into .bundles/ (git-ignored), for an H100 SXM (132 SMs).
set -euo pipefail
cd "$(dirname "$0")/../.."
SMS=${SMS:-132}
python test/python/runtime_stub.py "$SMS"
python test/python/kind_cases.py .bundles/kinds
for model in qwen3-tiny llama3-tiny qwen3-0.6b qwen3-1.7b; do
  /usr/bin/time -f "$model: compiled in %e s, peak %M KB" \
    mpk compile --model "$model" --dtype bfloat16 --max-seq 1024 --steps 32 --num-sms "$SMS" \
      -o ".bundles/$model-bf16-s32" --quiet
done
# Batch 3, for prompts of different lengths (its activations flagged: mpk-data-flags' max-rows is 8).
mpk compile --model qwen3-tiny --batch 3 --dtype bfloat16 --max-seq 1024 --steps 32 --num-sms "$SMS" \
  -o .bundles/qwen3-tiny-b3-bf16-s32 --quiet
# Linear and gate_up weight tiles streamed through the shared-memory weight ring
# (mpk-stage-weights): the 0.6B for the model tests, the tiny one for compute-sanitizer.
mpk compile --model qwen3-0.6b --dtype bfloat16 --max-seq 1024 --steps 32 --num-sms "$SMS" \
  --ring-bytes 114688 -o .bundles/qwen3-0.6b-staged-bf16-s32 --quiet
mpk compile --model qwen3-tiny --dtype bfloat16 --max-seq 1024 --steps 32 --num-sms "$SMS" \
  --ring-bytes 16384 -o .bundles/qwen3-tiny-staged --quiet
# Task functions that save the registers they use (--no-caller-saves, the calling
# convention before round 13): the model check of run_on_gpu.sh runs it like the others.
mpk compile --model qwen3-tiny --dtype bfloat16 --max-seq 1024 --steps 32 --num-sms "$SMS" \
  --no-caller-saves -o .bundles/qwen3-tiny-callee-saves-bf16-s32 --quiet
# The events between linears and attention keep their counters (--data-flags 0, the way
# before round 22; mpk-data-flags is on by default): run_on_gpu.sh checks them like the
# others, sanitize.sh the tiny one.
for model in qwen3-tiny llama3-tiny qwen3-0.6b; do
  mpk compile --model "$model" --dtype bfloat16 --max-seq 1024 --steps 32 --num-sms "$SMS" \
    --data-flags 0 -o ".bundles/$model-counters-bf16-s32" --quiet
done
# Tensor-parallel bundles, their ranks emulated on one GPU (1/N of the SMs each): test_gpu_tp.py.
for model in qwen3-tiny llama3-tiny; do
  for tp in 2 4; do
    mpk compile --model "$model" --tp "$tp" --num-sms $((SMS / tp)) --dtype bfloat16 --max-seq 1024 \
      --steps 32 -o ".bundles/$model-tp$tp" --quiet
    mpk compile --model "$model" --tp "$tp" --allreduce two-shot --num-sms $((SMS / tp)) --dtype bfloat16 \
      --max-seq 1024 --steps 32 -o ".bundles/$model-tp$tp-2shot" --quiet
  done
done
# Hugging Face folders saved by transformers and their bundles (every prompt row's
# logits): test_gpu_prefill.py compares them with transformers on the GPU.
python test/python/hf_cases.py .bundles/hf
du -sh .bundles/stub-"$SMS" .bundles/kinds .bundles/hf .bundles/*-bf16-s32

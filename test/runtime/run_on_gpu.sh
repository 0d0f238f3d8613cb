#!/usr/bin/env bash
# The GPU checks, on a machine with a GPU but without MLIR; the bundles are
# built beforehand on the compiling machine (test/runtime/build_bundles.sh).
#   1. pytest: the runtime with stub tasks (incl. the broken-dependency
#      timeout), every task kind alone, whole bf16 models (32 steps, one launch)
#   2. `mpk run --check` of every .bundles/*-bf16-s32: errors per step, ms/step
#   3. compute-sanitizer memcheck, racecheck and synccheck on a tiny model, on the
#      same model with its weights staged in shared memory, without data flags, at batch 3
#      (flagged rows of three sequences), and on its two tensor-parallel ranks emulated on
#      the GPU (sanitize.sh)
# Logs go to $OUT (default /tmp/mpk-gpu); a summary table is printed last.
set -uo pipefail
source "$(dirname "$0")/env.sh"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt"

# conftest.py needs MLIR; the GPU tests do not.
timeout "${MPK_PYTEST_TIMEOUT:-200}" python3 -m pytest --noconftest -p no:cacheprovider -v -s -rA \
  test/python/test_runtime_gpu.py test/python/test_gpu_kinds.py test/python/test_gpu_models.py \
  test/python/test_gpu_prefill.py test/python/test_gpu_tp.py \
  >"$OUT/gpu-tests.log" 2>&1
echo "pytest exit $?" >>"$OUT/gpu-tests.log"

for bundle in .bundles/*-bf16-s32; do
  [ -d "$bundle" ] || continue
  seed=$RANDOM
  echo "== mpk run $bundle --seed $seed --prompt-ids 3 1 4 --steps 32 --check" >>"$OUT/models.log"
  timeout "${MPK_RUN_TIMEOUT:-120}" python3 -m mpk run "$bundle" --seed $seed --prompt-ids 3 1 4 \
    --steps 32 --check >>"$OUT/models.log" 2>&1
  echo "exit $?" >>"$OUT/models.log"
done

bash test/runtime/sanitize.sh >"$OUT/sanitize.txt" 2>&1
[ -d .bundles/qwen3-tiny-staged ] && bash test/runtime/sanitize.sh .bundles/qwen3-tiny-staged >>"$OUT/sanitize.txt" 2>&1
[ -d .bundles/qwen3-tiny-counters-bf16-s32 ] && bash test/runtime/sanitize.sh .bundles/qwen3-tiny-counters-bf16-s32 >>"$OUT/sanitize.txt" 2>&1
[ -d .bundles/qwen3-tiny-b3-bf16-s32 ] && bash test/runtime/sanitize.sh .bundles/qwen3-tiny-b3-bf16-s32 >>"$OUT/sanitize.txt" 2>&1
# Two tensor-parallel ranks emulated side by side on the GPU (their stores into each other's memory).
[ -d .bundles/qwen3-tiny-tp2 ] && bash test/runtime/sanitize.sh .bundles/qwen3-tiny-tp2 >>"$OUT/sanitize.txt" 2>&1

echo "== summary ($(cat "$OUT/gpu.txt"))"
grep -E "^(PASSED|FAILED|SKIPPED|ERROR) |^=+ .*(passed|failed)|^pytest exit" "$OUT/gpu-tests.log"
grep -E "^(== mpk run|kernel:|check |exit |mpk run: error)" "$OUT/models.log"
cat "$OUT/sanitize.txt"

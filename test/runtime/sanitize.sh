#!/usr/bin/env bash
# compute-sanitizer memcheck, racecheck and synccheck over one run of a tiny model's
# bundle (8 steps in one launch); each tool's log goes to $OUT/<tool>.log and
# its summary line is printed. Exit status: non-zero if a tool reported errors.
#   test/runtime/sanitize.sh [bundle]     (default .bundles/qwen3-tiny-bf16-s32)
set -uo pipefail
source "$(dirname "$0")/env.sh"
bundle=${1:-.bundles/qwen3-tiny-bf16-s32}
status=0
for tool in memcheck racecheck synccheck; do
  # Instrumented code is slow: let a task wait up to 60 s before the kernel gives up.
  timeout 170 compute-sanitizer --tool "$tool" --error-exitcode 3 \
    python3 -m mpk run "$bundle" --steps 8 --prompt-ids 3 1 4 --timeout 60 --repeat 0 \
    >"$OUT/$tool.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  echo "$tool $(basename "$bundle") (exit $rc): $(grep -E 'SUMMARY' "$OUT/$tool.log" | sed 's/^=* *//' | tr '\n' ' ')"
done
exit $status

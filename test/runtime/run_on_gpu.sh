#!/usr/bin/env bash
# The runtime's GPU checks, on a machine with a GPU but without MLIR (the
# bundles are built beforehand on the compiling machine, into .bundles/:
#   python test/python/runtime_stub.py 132
#   mpk compile --model qwen3-tiny --max-seq 256 --steps 8 -o .bundles/qwen3-tiny-132
# ). Logs go to $OUT (default /tmp/mpk-gpu).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/mpk-gpu}
mkdir -p "$OUT"

# mpk without installing it: pyproject maps runtime/ to mpk.runtime; a link does too.
if ! python3 -c "import mpk.runtime" 2>/dev/null; then
  ln -s ../runtime mpk/runtime && trap 'rm -f mpk/runtime' EXIT
fi
mpk() { python3 -c 'import sys; from mpk.cli import main; sys.exit(main(sys.argv[1:]))' "$@"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/gpu.txt"

# conftest.py needs MLIR; the runtime tests do not.
python3 -m pytest --noconftest -p no:cacheprovider -v -s test/python/test_runtime_gpu.py 2>&1 | tee "$OUT/gpu-tests.log"

for bundle in .bundles/*-tiny-* ${MPK_LARGE_BUNDLES:-}; do
  [ -d "$bundle" ] || continue
  echo "== mpk run $bundle" | tee -a "$OUT/models.log"
  timeout "${MPK_RUN_TIMEOUT:-150}" bash -c "$(declare -f mpk); mpk run $bundle --prompt-ids 3 1 4 --steps 8 --check --profile" \
    2>&1 | tee -a "$OUT/models.log"
done

if [ -n "${MPK_SANITIZE:-}" ] && command -v compute-sanitizer >/dev/null; then
  timeout 120 compute-sanitizer --tool memcheck --target-processes all python3 -m pytest --noconftest \
    -p no:cacheprovider -q test/python/test_runtime_gpu.py -k "all_steps or times_out" 2>&1 | tee "$OUT/memcheck.log"
fi

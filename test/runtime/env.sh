# Sourced by the GPU scripts here: mpk from this checkout without installing
# it (the GPU machine has no MLIR and mpk is not pip-installed there).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:$PWD/test/python${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-/tmp/mpk-gpu}
mkdir -p "$OUT"
# pyproject maps runtime/ to mpk.runtime; a link does the same.
if ! python3 -c "import mpk.runtime" 2>/dev/null; then
  ln -s ../runtime mpk/runtime && trap 'rm -f mpk/runtime' EXIT
fi

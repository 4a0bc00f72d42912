#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): one command, at most ~9 minutes on one H100/H200.
#
#   bash bench/gpu_wheelhouse.sh              # first, here: .whl/ (what the bare box lacks, ~56 MiB)
#   bash bench/gpu_check.sh OUT_DIR           # on the GPU box, from the repo root (or GPU_CHECK_OUT=DIR)
#   bash bench/gpu_check.sh --smoke OUT_DIR   # CPU, tiny sizes: what `make test` runs
#
# Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.log. On a box of your own with `make gpu`
# done, .whl/ is not needed: without it nothing is installed. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=()
if [ "${1:-}" = --smoke ]; then smoke=(--smoke); shift; fi
out=${1:-${GPU_CHECK_OUT:?usage: bash bench/gpu_check.sh [--smoke] OUT_DIR (or set GPU_CHECK_OUT)}}
python=${PYTHON:-python3}
mkdir -p "$out"
if [ ${#smoke[@]} = 0 ] && [ -d .whl ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  for deb in .whl/bubblewrap_*.deb; do  # the HumanEval sandbox, unpacked beside, not into /
    [ -f "$deb" ] && dpkg -x "$deb" /tmp/bwrap && export PATH=/tmp/bwrap/usr/bin:$PATH
  done
fi
export PYTHONUNBUFFERED=1
"$python" bench/gpu_check.py "${smoke[@]}" --out "$out" 2>&1 | tee "$out/gpu_check.log"

#!/usr/bin/env bash
# The GPU check on a lent CUDA machine whose python3 has torch but not the notebook packages:
#   bash tools/gpu_check.sh        (from the repository root, with .whl/ and .gpu_data/ beside it)
# .whl/ holds the wheels of nbclient, nbformat, ipykernel, ipywidgets, diffusers and what they need
# beyond the machine's image; .gpu_data/ a copy of the offline MNIST (MNIST/raw). Both are ignored
# through .git/info/exclude. The whole run is cut at 340 s; tools/gpu_check.py keeps to 300 s itself.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs}"
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1 TINYDIFF_DATA="$PWD/.gpu_data" JUPYTER_PLATFORM_DIRS=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || echo "gpu_check.sh: installing the wheels failed; going on without them"
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$OUT/gpu_check.log"
timeout -k 10 340 python3 tools/gpu_check.py --data-root "$TINYDIFF_DATA" "$@" 2>&1 | tee -a "$OUT/gpu_check.log"
echo "gpu_check.sh: exit code ${PIPESTATUS[0]}"

#!/usr/bin/env bash
# The first run on a lent GPU machine (benchmarks/gpu_check.py): every trained run's CUDA path and speed.
#   bash scripts/gpu_check.sh --prepare   here, with .venv: the wheels the GPU image lacks (jsonschema and
#                                         what it needs, at .venv's versions) into .gpucheck/ (ignored)
#   bash scripts/gpu_check.sh [options]   there, with .gpucheck carried: installs them and runs the check;
#                                         options go to benchmarks/gpu_check.py; its table and log go to $OUT
# GPU_PYTHON (default 3.12) is the GPU image's Python version, for which the wheels are fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(jsonschema jsonschema-specifications referencing rpds-py)
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"
    echo "Options: those of benchmarks/gpu_check.py (.venv/bin/python benchmarks/gpu_check.py --help)."
    exit 0
fi
if [[ "${1:-}" == --prepare ]]; then
    pins=()
    for p in "${packages[@]}"; do
        pins+=("$p==$(.venv/bin/python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$p")")
    done
    rm -rf .gpucheck && mkdir .gpucheck
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpucheck "${pins[@]}"
    echo "gpu_check: ${pins[*]} in .gpucheck/; on the GPU machine run: bash scripts/gpu_check.sh (carry .gpucheck)"
    exit 0
fi
[[ -d .gpucheck ]] || { echo "error: no .gpucheck/: run 'bash scripts/gpu_check.sh --prepare' where pip reaches PyPI" >&2; exit 1; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpucheck-site .gpucheck/*.whl
export PYTHONPATH=/tmp/gpucheck-site PYTHONUNBUFFERED=1
out=${OUT:-gpu_check}
mkdir -p "$out"
nvidia-smi || true
for arg in "$@"; do
    [[ "$arg" == --out* ]] && { echo "error: --out is this script's (/tmp/gpu_check); its results go to \$OUT" >&2; exit 1; }
done
rm -rf /tmp/gpu_check  # a killed earlier attempt's partial checkpoints would be resumed, not trained afresh
status=0
python3 benchmarks/gpu_check.py --out /tmp/gpu_check "$@" 2>&1 | tee "$out/gpu_check.log" || status=$?
cp /tmp/gpu_check/gpu_check.md "$out/" 2>/dev/null || true
exit "$status"

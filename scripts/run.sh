#!/usr/bin/env bash
# Usage: bash scripts/run.sh [Snakemake targets and options]
# Set up, then run the default study (params.yaml) on the embedded default dataset and print a summary.
# Extra arguments go to Snakemake (e.g. a target such as results/gan/fid.json, or --dry-run);
# without them the whole study is built, recorded in DVC's dvc.lock (`dvc commit`: `dvc status` and
# `dvc repro` then find nothing to do), Snakemake's HTML report is written to results/report.html
# (comparisons, sample grids, training curves) and the summary (results/summary.txt) is printed.
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; echo "Snakemake's options: .venv/bin/snakemake --help"; exit 0; fi
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
python -m pipeline.dvcgen --check results/params.ok   # params valid and dvc.yaml current (DVC's stage check)
snakemake --cores "$(nproc)" "$@"
if [ "$#" -eq 0 ]; then
  dvc commit --force --quiet
  snakemake --report results/report.html
  cat results/summary.txt
  echo "report: $PWD/results/report.html"
fi

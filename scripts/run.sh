#!/usr/bin/env bash
# Set up, then run the default study (params.yaml) on the embedded default dataset and print a summary.
# Extra arguments go to Snakemake (e.g. a target such as results/gan/fid.json, or --dry-run);
# without them the whole study is built, recorded in DVC's dvc.lock (`dvc commit`: `dvc status` and
# `dvc repro` then find nothing to do) and its summary (results/summary.txt) is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake --cores "$(nproc)" "$@"
if [ "$#" -eq 0 ]; then
  dvc commit --force --quiet
  cat results/summary.txt
fi

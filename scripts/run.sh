#!/usr/bin/env bash
# Set up, then run the default study (params.yaml) on the embedded default dataset and print a summary.
# Extra arguments go to Snakemake (e.g. a target such as results/gan/fid.json, or --dry-run);
# without them the summary (results/summary.txt: means per method, each claim's verdict) is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake --cores "$(nproc)" "$@"
if [ "$#" -eq 0 ]; then cat results/summary.txt; fi

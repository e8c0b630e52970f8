#!/usr/bin/env bash
# Usage: bash scripts/test.sh [pytest options and test files]
# Set up, start the local SLURM test cluster, and run the whole test suite (extra args go to pytest).
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; echo "pytest's options: .venv/bin/python -m pytest --help"; exit 0; fi
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser_setup.sh  # headless Chromium for tests/test_report_browser.py
bash scripts/slurm_local.sh start
trap 'bash scripts/slurm_local.sh stop' EXIT
# pytest's own exit status is kept: 1 when a test fails, 5 when no test ran.
.venv/bin/python -m pytest "$@"

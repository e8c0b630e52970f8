#!/usr/bin/env bash
# Set up, start the local SLURM test cluster, and run the whole test suite (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser_setup.sh  # headless Chromium for tests/test_report_browser.py
bash scripts/slurm_local.sh start
trap 'bash scripts/slurm_local.sh stop' EXIT
# pytest's own exit status is kept: 1 when a test fails, 5 when no test ran.
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Usage: bash scripts/setup.sh
# Set up ganbench on a fresh Debian machine: system packages and the Python environment in .venv/.
# Re-running it when everything is in place takes seconds.
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; fi
cd "$(dirname "$0")/.."

apt_packages=(dataset-fashion-mnist)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv

# Install only when pyproject.toml changed since the last successful install.
stamp=.venv/.ganbench-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the Python environment into .venv/ (first run: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .dvc/plots_template.html  # written again below, from the installed libraries
  echo "$want" > "$stamp"
fi
# dvc plots show's page template with Vega inline (.dvc/config names it), so plots draw offline
[ -f .dvc/plots_template.html ] || .venv/bin/python -m pipeline.plots_template --out .dvc/plots_template.html
echo "setup: ready (.venv/bin/python, .venv/bin/snakemake, .venv/bin/dvc)"

#!/usr/bin/env bash
# Install headless Chromium and its WebDriver (Debian's chromium and chromium-driver) for the report's
# browser test (tests/test_report_browser.py). scripts/test.sh runs it; the main command
# (scripts/run.sh) needs no browser. Does nothing when both are installed.
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; fi
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && exit 0
echo "browser_setup: installing Debian packages chromium chromium-driver"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver

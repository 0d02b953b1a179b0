#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the browser tests (tests/face/test_web_browser.py) and
# scripts/bench_ui.py: /usr/bin/chromium and /usr/bin/chromedriver. Needs root (or sudo).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver

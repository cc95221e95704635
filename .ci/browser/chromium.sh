#!/usr/bin/env bash
# A real headless browser for the tests that open kubesigma's HTML reports (`rules backtest --html`):
# Debian's chromium from apt (no download from anywhere else). Idempotent; about a minute when missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends chromium
chromium --version

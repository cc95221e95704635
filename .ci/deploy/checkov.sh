#!/usr/bin/env bash
# checkov (PyPI) in a virtualenv of its own, cached: it pins an older `packaging` than the project's tools,
# so it must not share their environment. Extra arguments go to checkov. Offline: --skip-download keeps it
# from asking the Prisma Cloud platform for policies or guidelines.
set -euo pipefail
cd "$(dirname "$0")/../.."
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
PYTHON="${PYTHON:-python3}"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/kubesigma/checkov-$CHECKOV_VERSION"
# The marker is written last: an interrupted install is redone, not used half-made.
if [[ ! -f "$VENV/.installed" ]]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION" >&2
    touch "$VENV/.installed"
fi
exec "$VENV/bin/checkov" --skip-download "$@"

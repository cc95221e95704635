#!/usr/bin/env bash
# The images' install step: kubesigma from its built wheel into the image's Python, without changing
# anything the base image installed (Beam's SDK images pin the packages their workers were tested with),
# then proof that the installed package, not a source tree, runs: it loads and compiles its shipped rules
# and declares the options the templates pass. The Dockerfiles run it; tests/deploy runs it in a fresh
# virtualenv (no Docker engine there).
#   PYTHON=/path/to/python terraform/install-kubesigma.sh dist/kubesigma-0.1.0-py3-none-any.whl
set -euo pipefail
PYTHON="${PYTHON:-python3}"
wheel="${1:?usage: install-kubesigma.sh WHEEL}"
[[ -f "$wheel" ]] || { echo "install-kubesigma: no wheel at $wheel (make flex-template builds it)" >&2; exit 1; }

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
# Everything already installed stays at its version; a conflict fails the build instead of upgrading Beam.
# (The Dockerfiles set PIP_NO_CACHE_DIR=1: no pip cache in the images.)
"$PYTHON" -m pip freeze --exclude-editable | grep -v '^kubesigma==' > "$constraints" || true
"$PYTHON" -m pip install --constraint "$constraints" "$wheel"
"$PYTHON" -m pip check

cd /  # import the installed package, never a checkout in the working directory
"$PYTHON" -m kubesigma.pipeline.cli rules check > /dev/null
"$PYTHON" -m kubesigma.pipeline.cli run --help | grep -q -- '--pubsub-subscription'
"$PYTHON" -c 'import kubesigma.pipeline.run, kubesigma.pipeline.commands.flex_template'
echo "install-kubesigma: $("$PYTHON" -m pip show kubesigma | sed -n 's/^Version: /kubesigma /p') installed for $("$PYTHON" -c 'import sys; print(sys.executable)')"

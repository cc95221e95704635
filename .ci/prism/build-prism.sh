#!/usr/bin/env bash
# Build Beam's Prism runner (Go) from the Go module proxy, pinned to the Python SDK's version, and print
# its path. Idempotent: the binary is reused from $GOBIN (default ~/go/bin). PrismRunner then runs
# offline with --prism_location=<path> instead of downloading a release from GitHub.
set -euo pipefail
BEAM_VERSION="${BEAM_VERSION:-2.77.0}"
GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
BIN="$GOBIN/prism"
STAMP="$GOBIN/.prism-version"
if [[ ! -x "$BIN" || "$(cat "$STAMP" 2>/dev/null)" != "$BEAM_VERSION" ]]; then
    GOFLAGS=-buildvcs=false GOBIN="$GOBIN" go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v${BEAM_VERSION}" >&2
    echo "$BEAM_VERSION" > "$STAMP"
fi
echo "$BIN"

#!/usr/bin/env bash
# Build Google's in-memory Pub/Sub fake (cloud.google.com/go/pubsub/pstest, pinned in go.mod/go.sum)
# from the Go module proxy into a small server and print its path. Idempotent: rebuilt only when its
# sources change. The Pub/Sub end-to-end test starts it on 127.0.0.1 and points PUBSUB_EMULATOR_HOST at it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pstest-server"
GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
BIN="$GOBIN/kubesigma-pstest"
STAMP="$GOBIN/.kubesigma-pstest-sources"
SOURCES="$(cat "$HERE/go.mod" "$HERE/go.sum" "$HERE/main.go" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$BIN" || "$(cat "$STAMP" 2>/dev/null)" != "$SOURCES" ]]; then
    mkdir -p "$GOBIN"
    (cd "$HERE" && GOFLAGS=-buildvcs=false go build -mod=readonly -o "$BIN" .) >&2
    echo "$SOURCES" > "$STAMP"
fi
echo "$BIN"

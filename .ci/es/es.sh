#!/usr/bin/env bash
# Starts (up) or stops (down) the single-node test Elasticsearch on loopback, in the background with a
# pid file. Jars come from Maven Central (.ci/es/pom.xml); data, logs and pid live under .es/ (ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ES_DIR="${KUBESIGMA_ES_HOME:-$ROOT/.es}"
HOST=127.0.0.1
PORT="${KUBESIGMA_ES_PORT:-9200}"
HEAP="${KUBESIGMA_ES_HEAP:-1g}"
WAIT="${KUBESIGMA_ES_WAIT:-900}" # seconds; a cold Maven cache is resolved before this clock starts
PID_FILE="$ES_DIR/es.pid"
LOG="$ES_DIR/logs/es.out"
URL="http://$HOST:$PORT/"
NAME=es
# shellcheck source=../lib/service.sh
source "$ROOT/.ci/lib/service.sh"

answers() {
    if command -v curl >/dev/null; then
        curl -sf -m 5 -o /dev/null "$URL"
    else
        python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "$URL" 2>/dev/null
    fi
}

ready() { answers; }

up() {
    if pid="$(running_pid)"; then
        if answers; then echo "es-up: Elasticsearch already running (pid $pid) at $URL"; return 0; fi
    elif answers; then
        echo "es-up: something already answers at $URL (not started by us); using it"
        return 0
    fi
    mkdir -p "$ES_DIR/logs" "$ES_DIR/classes"
    echo "es-up: resolving Elasticsearch jars from Maven Central (first run takes a few minutes)"
    resolve_jars "$ROOT/.ci/es/pom.xml" "$ES_DIR/lib" "$ES_DIR/logs/mvn.log"
    local src="$ROOT/.ci/es/src/org/elasticsearch/node/KubesigmaEsLauncher.java"
    local cls="$ES_DIR/classes/org/elasticsearch/node/KubesigmaEsLauncher.class"
    if [[ ! -f "$cls" || "$src" -nt "$cls" ]]; then
        javac -nowarn -d "$ES_DIR/classes" -cp "$ES_DIR/lib/*" "$src"
    fi
    echo "es-up: starting Elasticsearch on $URL (heap $HEAP, log $LOG)"
    start_and_wait "$WAIT" java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseSerialGC -Djava.awt.headless=true \
        -cp "$ES_DIR/classes:$ES_DIR/lib/*" org.elasticsearch.node.KubesigmaEsLauncher \
        "$ES_DIR/home" "$HOST" "$PORT"
}

main "$@"

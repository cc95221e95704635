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

answers() {
    if command -v curl >/dev/null; then
        curl -sf -m 5 -o /dev/null "$URL"
    else
        python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "$URL" 2>/dev/null
    fi
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

up() {
    if pid="$(running_pid)"; then
        if answers; then echo "es-up: Elasticsearch already running (pid $pid) at $URL"; return 0; fi
    elif answers; then
        echo "es-up: something already answers at $URL (not started by us); using it"
        return 0
    fi
    local start=$SECONDS
    mkdir -p "$ES_DIR/logs" "$ES_DIR/classes"
    echo "es-up: resolving Elasticsearch jars from Maven Central (first run takes a few minutes)"
    if ! mvn -B -Dstyle.color=never -f "$ROOT/.ci/es/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$ES_DIR/lib" -DincludeScope=runtime -DoverWriteIfNewer=true >"$ES_DIR/logs/mvn.log" 2>&1; then
        echo "es-up: Maven could not resolve the Elasticsearch jars; last lines of $ES_DIR/logs/mvn.log:" >&2
        tail -n 30 "$ES_DIR/logs/mvn.log" >&2
        return 1
    fi
    local src="$ROOT/.ci/es/src/org/elasticsearch/node/KubesigmaEsLauncher.java"
    local cls="$ES_DIR/classes/org/elasticsearch/node/KubesigmaEsLauncher.class"
    if [[ ! -f "$cls" || "$src" -nt "$cls" ]]; then
        javac -nowarn -d "$ES_DIR/classes" -cp "$ES_DIR/lib/*" "$src"
    fi
    echo "es-up: starting Elasticsearch on $URL (heap $HEAP, log $LOG)"
    # setsid: the node outlives make's shell; it is stopped through the pid file.
    setsid nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseSerialGC -Djava.awt.headless=true \
        -cp "$ES_DIR/classes:$ES_DIR/lib/*" org.elasticsearch.node.KubesigmaEsLauncher \
        "$ES_DIR/home" "$HOST" "$PORT" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local pid
    pid="$(cat "$PID_FILE")"
    local deadline=$((SECONDS + WAIT))
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "es-up: Elasticsearch exited; last log lines:" >&2
            tail -n 40 "$LOG" >&2
            rm -f "$PID_FILE"
            return 1
        fi
        if ((SECONDS > deadline)); then
            echo "es-up: no answer at $URL after ${WAIT}s; see $LOG" >&2
            return 1
        fi
        sleep 1
    done
    echo "es-up: Elasticsearch answers at $URL (pid $pid) after $((SECONDS - start))s"
}

down() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        echo "es-down: not running"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "es-down: pid $pid did not stop in 30s; killing it" >&2
        kill -9 "$pid"
    fi
    rm -f "$PID_FILE"
    echo "es-down: stopped (pid $pid)"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac

# Sourced by the scripts that run a test server from Maven Central jars on loopback (.ci/es, .ci/kafka):
# resolve the jars, start the JVM in the background with a pid file, wait until it answers, stop it.
# The caller sets NAME (for messages), PID_FILE and LOG, and defines `ready` (true once it serves).

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# resolve_jars POM DIR MVN_LOG: the POM's runtime dependencies copied into DIR.
resolve_jars() {
    if ! mvn -B -Dstyle.color=never -f "$1" dependency:copy-dependencies \
        -DoutputDirectory="$2" -DincludeScope=runtime -DoverWriteIfNewer=true >"$3" 2>&1; then
        echo "$NAME-up: Maven could not resolve the jars of $1; last lines of $3:" >&2
        tail -n 30 "$3" >&2
        return 1
    fi
}

# start_and_wait WAIT_SECONDS COMMAND...: COMMAND in the background (setsid: it outlives make's shell and
# is stopped through the pid file), then `ready` polled until it holds, the process dies, or time is up.
start_and_wait() {
    local wait=$1 start=$SECONDS
    shift
    setsid nohup "$@" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local pid deadline=$((SECONDS + wait))
    pid="$(cat "$PID_FILE")"
    until ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$NAME-up: the process exited; last log lines of $LOG:" >&2
            tail -n 40 "$LOG" >&2
            rm -f "$PID_FILE"
            return 1
        fi
        if ((SECONDS > deadline)); then
            echo "$NAME-up: not ready after ${wait}s; see $LOG" >&2
            return 1
        fi
        sleep 1
    done
    echo "$NAME-up: ready (pid $pid) after $((SECONDS - start))s"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        echo "$NAME-down: not running"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$NAME-down: pid $pid did not stop in 30s; killing it" >&2
        kill -9 "$pid"
    fi
    rm -f "$PID_FILE"
    echo "$NAME-down: stopped (pid $pid)"
}

# main up|down, with the caller's `up`.
main() {
    case "${1:-}" in
    up) up ;;
    down) stop ;;
    *)
        echo "usage: $0 up|down" >&2
        exit 2
        ;;
    esac
}

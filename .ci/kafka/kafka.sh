#!/usr/bin/env bash
# Starts (up) or stops (down) a single-node Apache Kafka broker in KRaft mode on loopback, in the
# background with a pid file, for the Kafka tests. Jars come from Maven Central (.ci/kafka/pom.xml) and are
# cached under ~/.cache/kubesigma/kafka; data, logs, the test CA and the SASL password live under .kafka/.
#
# Listeners: PLAINTEXT on 127.0.0.1:9092, SASL_SSL (PLAIN, a throwaway CA made here) on 127.0.0.1:9093,
# the KRaft controller on 127.0.0.1:9094. Tests find the TLS listener's CA in .kafka/tls/ca.pem and the
# SASL user's password in .kafka/sasl/password (user `kubesigma`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
KAFKA_DIR="${KUBESIGMA_KAFKA_HOME:-$ROOT/.kafka}"
LIB="${XDG_CACHE_HOME:-$HOME/.cache}/kubesigma/kafka/lib"
HOST=127.0.0.1
PORT="${KUBESIGMA_KAFKA_PORT:-9092}"
TLS_PORT="${KUBESIGMA_KAFKA_TLS_PORT:-9093}"
CONTROLLER_PORT="${KUBESIGMA_KAFKA_CONTROLLER_PORT:-9094}"
HEAP="${KUBESIGMA_KAFKA_HEAP:-512m}"
WAIT="${KUBESIGMA_KAFKA_WAIT:-120}"
PID_FILE="$KAFKA_DIR/kafka.pid"
LOG="$KAFKA_DIR/logs/kafka.out"
NAME=kafka
# shellcheck source=../lib/service.sh
source "$ROOT/.ci/lib/service.sh"

answers() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

ready() { answers "$PORT" && grep -q "Kafka Server started" "$LOG"; }

# A throwaway CA and a server certificate for 127.0.0.1 (PEM, read by the broker as a PEM keystore).
make_tls() {
    local tls="$KAFKA_DIR/tls"
    [[ -s "$tls/server.pem" && -s "$tls/ca.pem" ]] && return 0
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kubesigma test CA" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 3650 -extfile "$tls/san.ext" -out "$tls/server.crt" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$tls/server.key" -out "$tls/server.p8"
    cat "$tls/server.p8" "$tls/server.crt" "$tls/ca.pem" >"$tls/server.pem"
}

write_config() {
    local password
    mkdir -p "$KAFKA_DIR/sasl"
    [[ -s "$KAFKA_DIR/sasl/password" ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$KAFKA_DIR/sasl/password")
    password="$(cat "$KAFKA_DIR/sasl/password")"
    (
        umask 077
        cat >"$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,SASL_SSL://$HOST:$TLS_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,SASL_SSL://$HOST:$TLS_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=2
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_kubesigma="$password";
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_DIR/tls/server.pem
EOF
    )
    # Warnings and the broker's start line only (the readiness check waits for it).
    cat >"$KAFKA_DIR/log4j2.properties" <<EOF
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
EOF
}

up() {
    if pid="$(running_pid)"; then
        if answers "$PORT"; then echo "kafka-up: Kafka already running (pid $pid) at $HOST:$PORT"; return 0; fi
    elif answers "$PORT"; then
        echo "kafka-up: something already answers at $HOST:$PORT (not started by us); using it"
        return 0
    fi
    mkdir -p "$KAFKA_DIR/logs" "$LIB"
    if [[ ! -f "$LIB/.resolved" || "$ROOT/.ci/kafka/pom.xml" -nt "$LIB/.resolved" ]]; then
        echo "kafka-up: resolving Kafka jars from Maven Central into $LIB"
        resolve_jars "$ROOT/.ci/kafka/pom.xml" "$LIB" "$KAFKA_DIR/logs/mvn.log"
        touch "$LIB/.resolved"
    fi
    make_tls
    write_config
    local java=(java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseSerialGC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$LIB/*")
    if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
        "${java[@]}" kafka.tools.StorageTool format --ignore-formatted \
            --cluster-id "$("${java[@]}" kafka.tools.StorageTool random-uuid)" \
            --config "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 || {
            echo "kafka-up: formatting the KRaft log failed:" >&2
            tail -n 20 "$KAFKA_DIR/logs/format.log" >&2
            return 1
        }
    fi
    echo "kafka-up: starting Kafka on $HOST:$PORT (SASL_SSL $TLS_PORT, heap $HEAP, log $LOG)"
    start_and_wait "$WAIT" "${java[@]}" kafka.Kafka "$KAFKA_DIR/server.properties"
}

main "$@"

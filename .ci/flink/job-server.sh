#!/usr/bin/env bash
# Resolve Beam's Flink job-server jar from Maven Central into ~/.m2 (idempotent) and print its path.
# FlinkRunner takes it via --flink_job_server_jar, so tests never download at run time.
set -euo pipefail

BEAM_VERSION="${BEAM_VERSION:-2.77.0}"
FLINK_MINOR="${FLINK_MINOR:-1.19}"
ARTIFACT="beam-runners-flink-${FLINK_MINOR}-job-server"
REPO="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
JAR="$REPO/org/apache/beam/$ARTIFACT/$BEAM_VERSION/$ARTIFACT-$BEAM_VERSION.jar"

if [[ ! -s "$JAR" ]]; then
    # transitive=false: the job server is a shaded jar carrying its own dependencies.
    mvn -q -B dependency:get \
        -Dartifact="org.apache.beam:${ARTIFACT}:${BEAM_VERSION}" \
        -Dtransitive=false >&2
fi
[[ -s "$JAR" ]] || { echo "fetch-job-server: $JAR not found after mvn dependency:get" >&2; exit 1; }
echo "$JAR"

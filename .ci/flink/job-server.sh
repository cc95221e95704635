#!/usr/bin/env bash
# Print the path of a Beam Flink job-server jar for FlinkRunner's --flink_job_server_jar (idempotent), so
# tests never download at run time. First choice: the jar Beam publishes for the installed apache-beam
# (org.apache.beam:beam-runners-flink-<minor>-job-server). When Maven Central does not serve it (the case
# on this project's machines for every Beam from 2.63 on), build the same jar from Beam's published Flink
# runner module at the newest version that resolves (pom.xml here) and cache it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
FLINK_MINOR="${FLINK_MINOR:-1.19}"
BEAM_VERSION="${BEAM_VERSION:-$("$PYTHON" -c 'import apache_beam; print(apache_beam.__version__)')}"
BUILT_BEAM_VERSION="${BUILT_BEAM_VERSION:-2.62.0}"
REPO="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kubesigma/flink"

ARTIFACT="beam-runners-flink-${FLINK_MINOR}-job-server"
PUBLISHED="$REPO/org/apache/beam/$ARTIFACT/$BEAM_VERSION/$ARTIFACT-$BEAM_VERSION.jar"
BUILT="$CACHE/$ARTIFACT-$BUILT_BEAM_VERSION.jar"

for jar in "$PUBLISHED" "$BUILT"; do
    [[ -s "$jar" ]] && { echo "$jar"; exit 0; }
done

# transitive=false: the published job server is a shaded jar carrying its own dependencies.
if mvn -q -B dependency:get -Dartifact="org.apache.beam:${ARTIFACT}:${BEAM_VERSION}" -Dtransitive=false \
        >/dev/null 2>&1 && [[ -s "$PUBLISHED" ]]; then
    echo "$PUBLISHED"
    exit 0
fi

echo "job-server: $ARTIFACT:$BEAM_VERSION is not served; building it from beam-runners-flink-$FLINK_MINOR:$BUILT_BEAM_VERSION" >&2
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
mvn -q -B -f "$HERE/pom.xml" package \
    -Dbeam.version="$BUILT_BEAM_VERSION" -Dflink.minor="$FLINK_MINOR" -Djobserver.build="$build" >&2
mkdir -p "$CACHE"
mv "$build/$ARTIFACT-$BUILT_BEAM_VERSION.jar" "$BUILT.tmp"
mv "$BUILT.tmp" "$BUILT"
echo "$BUILT"

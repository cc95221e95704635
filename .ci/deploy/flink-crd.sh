#!/usr/bin/env bash
# Print the path of the Flink Kubernetes Operator's FlinkDeployment CRD (idempotent), for the manifest
# tests. Helm charts cannot be downloaded here; the operator's API module on Maven Central carries the
# CRDs its build generates (META-INF/fabric8/*.yml in org.apache.flink:flink-kubernetes-operator-api).
# Extracted into a cache, never copied into the repository.
set -euo pipefail
OPERATOR_VERSION="${FLINK_OPERATOR_VERSION:-1.10.0}"
CRD="flinkdeployments.flink.apache.org-v1.yml"
REPO="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kubesigma/flink-operator-$OPERATOR_VERSION"
JAR="$REPO/org/apache/flink/flink-kubernetes-operator-api/$OPERATOR_VERSION/flink-kubernetes-operator-api-$OPERATOR_VERSION.jar"

if [[ -s "$CACHE/$CRD" ]]; then
    echo "$CACHE/$CRD"
    exit 0
fi
[[ -s "$JAR" ]] || mvn -q -B dependency:get \
    -Dartifact="org.apache.flink:flink-kubernetes-operator-api:$OPERATOR_VERSION" -Dtransitive=false >&2
mkdir -p "$CACHE"
python3 - "$JAR" "META-INF/fabric8/$CRD" "$CACHE/$CRD" <<'PY'
import sys, zipfile
jar, member, out = sys.argv[1:]
with zipfile.ZipFile(jar) as z:
    data = z.read(member)
with open(out + ".tmp", "wb") as f:
    f.write(data)
PY
mv "$CACHE/$CRD.tmp" "$CACHE/$CRD"
echo "$CACHE/$CRD"

#!/usr/bin/env bash
# `make deploy-check`: what is deployed is checked before it is applied.
#  1. terraform/: HCL syntax and canonical formatting (.ci/terraform/check.sh);
#  2. terraform/dataflow/metadata.json declares exactly the options `kubesigma run` accepts (regenerate with
#     python -m kubesigma.pipeline.commands.flex_template);
#  3. checkov over terraform/ (the modules, the Flink manifests under terraform/flink, the Dockerfiles),
#     and over the pods the operator makes of each FlinkDeployment (.ci/deploy/flink_pods.py: checkov has
#     no schema for the CRD): no failed check, and every skip (`checkov:skip=ID:reason` in a file,
#     `checkov.io/skipN: "ID=reason"` in a manifest's annotations) says why.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"

bash .ci/terraform/check.sh
"$PYTHON" -m kubesigma.pipeline.commands.flex_template --check

# A skip without a reason after its check id is a finding nobody can review.
unexplained="$(grep -rnE 'checkov:skip=[A-Z0-9_]+(:[[:space:]]*)?$|checkov\.io/skip[0-9]+:[[:space:]]*"?[A-Z0-9_]+(=[[:space:]]*)?"?$' terraform || true)"
if [[ -n "$unexplained" ]]; then
    echo "deploy check: checkov skips without a reason:" >&2
    echo "$unexplained" >&2
    exit 1
fi
skips="$(grep -rhoE 'checkov:skip=[A-Z0-9_]+|checkov\.io/skip[0-9]+:' terraform | wc -l)"

bash .ci/deploy/checkov.sh --quiet --compact -d terraform --framework terraform kubernetes dockerfile
pods="$(mktemp -d)"
trap 'rm -rf "$pods"' EXIT
"$PYTHON" .ci/deploy/flink_pods.py terraform/flink/manifests "$pods"
bash .ci/deploy/checkov.sh --quiet --compact -d "$pods" --framework kubernetes
echo "deploy check: checkov found no failed check over terraform/ and the Flink pods ($skips skips, each with its reason)"

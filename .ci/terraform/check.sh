#!/usr/bin/env bash
# Syntax and canonical formatting of the terraform modules with HCL's own formatter (the one `terraform
# fmt` uses), built from the Go module proxy. Terraform's providers come from its registry, which this
# machine does not reach, so `terraform validate` cannot run here; tests/deploy checks the modules' values.
set -euo pipefail
cd "$(dirname "$0")/../.."
HCL_VERSION="${HCL_VERSION:-v2.25.0}"
BIN="$(go env GOPATH)/bin/hclfmt"
[[ -x "$BIN" ]] || go install "github.com/hashicorp/hcl/v2/cmd/hclfmt@${HCL_VERSION}" >&2
mapfile -t files < <(find terraform -name '*.tf' | sort)
[[ ${#files[@]} -gt 0 ]] || { echo "terraform check: no .tf files under terraform/" >&2; exit 1; }
"$BIN" -check -require-no-change "${files[@]}" >/dev/null
echo "terraform check: ${#files[@]} files parse and are formatted"

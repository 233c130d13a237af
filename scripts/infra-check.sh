#!/usr/bin/env bash
# Static checks of the SAM template (run by `make test`; needs .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
region="${AWS_REGION:-us-east-1}"
.venv/bin/sam validate --lint --template-file infra/template.yaml --region "$region"
.venv/bin/cfn-lint --regions "$region" -- infra/template.yaml

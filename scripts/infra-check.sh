#!/usr/bin/env bash
# Static checks of the SAM template (run by `make test`; needs .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
region="${AWS_REGION:-us-east-1}"
.venv/bin/sam validate --lint --template-file infra/template.yaml --region "$region"
.venv/bin/cfn-lint --regions "$region" -- infra/template.yaml
.venv/bin/python scripts/iam-check.py infra/template.yaml
# Security findings: every one either fixed or skipped next to its resource with the reason
# (Metadata: checkov: skip). No network: --skip-download.
.venv/checkov/bin/checkov --skip-download --quiet --compact --framework cloudformation -f infra/template.yaml

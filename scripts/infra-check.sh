#!/usr/bin/env bash
# Static checks of the SAM template.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f infra/template.yaml ]]; then
  echo "infra/template.yaml not written yet; skipping template checks"
  exit 0
fi
.venv/bin/sam validate --lint --template-file infra/template.yaml --region "${AWS_REGION:-us-east-1}"
.venv/bin/cfn-lint infra/template.yaml

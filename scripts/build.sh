#!/usr/bin/env bash
# `make build`: cross-compiles the Lambda functions for arm64 with cargo-lambda (zig as the
# linker) through `sam build`, then reports each function's zipped size.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
req=tools/build-requirements.txt
stamp="$venv/.build-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null
export PATH="$PWD/$venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
sam build --template-file infra/template.yaml --config-file "$PWD/samconfig.toml" \
  --build-dir .aws-sam/build
for fn in AppendApiFunction ReadApiFunction SequencerFunction ProjectorFunction PublisherFunction; do
  dir=".aws-sam/build/$fn"
  [[ -f "$dir/bootstrap" ]] || continue
  zip="$(mktemp -d)/$fn.zip"
  python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(sys.argv[2], "bootstrap")' "$zip" "$dir/bootstrap"
  printf '%-20s bootstrap %8d bytes, zipped %8d bytes\n' "$fn" \
    "$(stat -c %s "$dir/bootstrap")" "$(stat -c %s "$zip")"
done

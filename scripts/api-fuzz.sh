#!/usr/bin/env bash
# Runs schemathesis against the local server and infra/openapi.yaml. Needs a DynamoDB in
# the environment (run it through scripts/with-dynamodb.sh, as `make test` does).
#
# Checks: no 5xx, every status/header/body as the spec says, and invalid input refused.
# The server runs with authorization on (AUTH_MODE=jwt, development tokens) and every request
# carries an administrator's token, so the fuzzed requests take the deployed code path.
# SCHEMATHESIS_MAX_EXAMPLES (default 60) and SCHEMATHESIS_SEED (default 1) tune the run.
# The request timeout is generous because moto, not the store, slows down as its table
# fills: after ~2,500 fuzzed requests single moto transactions were seen taking 7-11 s.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export EVENTS_TABLE="schemathesis-$port-$$"
mkdir -p .local
log=".local/api-fuzz-server.log"
bin="${CARGO_TARGET_DIR:-target}/debug"
export AUTH_MODE=jwt
token="$("$bin/eventstore" dev-token --scope admin --subject schemathesis --ttl 7200)"
PORT="$port" RUST_LOG=warn "$bin/eventstore-local" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 300); do
  if grep -q "event store API on" "$log"; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "local server failed:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done

.venv/bin/schemathesis --config-file scripts/schemathesis.toml run infra/openapi.yaml \
  --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-60}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 1 \
  --request-timeout 60 \
  --no-color \
  --report junit --report-dir .local/schemathesis

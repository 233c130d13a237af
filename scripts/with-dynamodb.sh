#!/usr/bin/env bash
# Runs a command with a DynamoDB endpoint in its environment.
#
# If AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL is set, that DynamoDB is used as it is
# (DynamoDB Local, say). Otherwise moto server is started from .venv on a free loopback
# port, and stopped again when the command ends, whether it passed or failed; it also
# serves EventBridge, SQS, Lambda and IAM, whose endpoints are set to it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# The SDK needs a region and some credentials even for a local endpoint.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"

if [[ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}${AWS_ENDPOINT_URL:-}" ]]; then
  echo "using the DynamoDB at ${AWS_ENDPOINT_URL_DYNAMODB:-$AWS_ENDPOINT_URL}" >&2
  exec "$@"
fi

"$root/scripts/venv.sh"
port="$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$root/.local"
log="$root/.local/moto-$port.log"
"$root/.venv/bin/python" "$root/scripts/moto_server.py" "$port" >"$log" 2>&1 &
moto_pid=$!
stop() { kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 100); do
  if "$root/.venv/bin/python" - "$port" <<'PY' 2>/dev/null; then break; fi
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
PY
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto server failed to start; its log:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.1
done

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$port"
# moto serves the other services on the same port: EventBridge (the publisher's bus), SQS
# (the queues a bus rule delivers to, failure queues), Lambda and IAM (event source mappings
# for `eventstore check`'s tests).
for service in EVENTBRIDGE SQS LAMBDA IAM; do
  export "AWS_ENDPOINT_URL_$service=http://127.0.0.1:$port"
done
echo "started moto server (DynamoDB, EventBridge, SQS, Lambda, IAM) at $AWS_ENDPOINT_URL_DYNAMODB, log in $log" >&2
"$@"

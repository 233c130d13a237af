#!/usr/bin/env bash
# The test suite proper, run by `make test` inside scripts/with-dynamodb.sh: the Rust unit
# and specification tests, then schemathesis against the local server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
cargo build --locked --bin eventstore-local --bin eventstore
scripts/api-fuzz.sh

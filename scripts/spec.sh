#!/usr/bin/env bash
# The test suite proper, run by `make test` inside scripts/with-dynamodb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked

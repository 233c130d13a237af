# The two commands: `make dev` and `make test`. Both need Rust and Python 3, nothing else:
# the local DynamoDB (moto server) and the checking tools install into .venv/.

SHELL := /usr/bin/env bash
export SAM_CLI_TELEMETRY := 0
export AWS_REGION ?= us-east-1
VENV := .venv/bin
TARGET := $(or $(CARGO_TARGET_DIR),target)

.PHONY: dev test lint unit spec infra-check bench bench-compare repair build deploy clean venv

## Serve the HTTP API on 127.0.0.1:$${PORT:-3000} against a local DynamoDB, until Ctrl-C.
dev:
	cargo build --bin eventstore-local
	scripts/with-dynamodb.sh $(TARGET)/debug/eventstore-local

## Everything CI checks: formatting, lints, unit tests, the specification suite against a
## local DynamoDB, the API fuzzing, and the SAM template checks.
test: lint spec infra-check

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

## Unit and specification tests (the latter need a DynamoDB; one is started if none is set).
spec: venv
	scripts/with-dynamodb.sh scripts/spec.sh

infra-check: venv
	scripts/infra-check.sh

## On a local DynamoDB: sequencer throughput and append -> $$all lag, the cost of loading a
## 10,000-event aggregate with and without a snapshot, projector throughput and writes per
## event, long polling's delay and cost, the EventBridge publisher's throughput and requests
## per event, the local server's peak memory on hostile bodies,
## the local DynamoDB's memory under transactions, and the capacity report: write and read
## units per event and the busiest partition keys at a target rate (`make bench
## CAPACITY="rate=20000 hot=0.3"`; settings in tests/src/bin/capacity-bench.rs). They report
## figures and assert nothing.
bench: venv
	cargo build -p eventstore-tests --bin sequencer-bench --bin repository-bench --bin projector-bench --bin long-poll-bench --bin publisher-bench --bin capacity-bench
	cargo build --bin eventstore-local
	scripts/with-dynamodb.sh $(VENV)/python scripts/body-memory.py $(TARGET)/debug/eventstore-local
	$(VENV)/python scripts/moto-memory.py scripts/moto_server.py
	scripts/with-dynamodb.sh $(TARGET)/debug/sequencer-bench
	scripts/with-dynamodb.sh $(TARGET)/debug/repository-bench
	scripts/with-dynamodb.sh $(TARGET)/debug/projector-bench
	scripts/with-dynamodb.sh $(TARGET)/debug/long-poll-bench
	scripts/with-dynamodb.sh $(TARGET)/debug/publisher-bench
	scripts/with-dynamodb.sh $(TARGET)/debug/capacity-bench $(CAPACITY)

## The repository path side by side with dynamo-es and cqrs-es 0.5 (from crates.io) on one
## local DynamoDB, requests counted on the wire. Its own workspace (bench/compare), so that
## neither `make test` nor the default build compiles those crates.
bench-compare: venv
	cargo build --release --manifest-path bench/compare/Cargo.toml --target-dir $(TARGET)
	scripts/with-dynamodb.sh $(TARGET)/release/compare-bench

## Give positions to events the sequencer missed: `make repair` (local) or, against AWS,
## `cargo run -p eventstore-cli -- --table <EventsTableName> repair`.
repair:
	cargo run -p eventstore-cli -- repair

venv:
	scripts/venv.sh

## Cross-build the Lambda functions for arm64 (needs the dev tools in .venv).
build: venv
	scripts/build.sh

## Deploy with SAM; the first time, `make deploy GUIDED=1`.
deploy: build
	$(VENV)/sam deploy --template-file .aws-sam/build/template.yaml \
		--config-file $(CURDIR)/samconfig.toml $(if $(GUIDED),--guided,)

clean:
	cargo clean
	rm -rf .aws-sam .local

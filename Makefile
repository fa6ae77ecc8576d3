# tubes: the commands. `make dev` runs the pipeline locally; `make test` runs every test. Both install what they
# need first (pinned: .venv, tools/node_modules, the arm64 Rust target) and skip that when already installed.
SHELL := /bin/bash
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
VENV := .venv/bin
# Run from inside `cargo test` (the tests drive make and dev.sh), the environment holds cargo's variables for the
# test crate; build scripts that watch them (ring's watches CARGO_PKG_NAME, CARGO_MANIFEST_DIR, OUT_DIR) would then
# run again, and again at the user's next build. A build from here sees what a shell sees.
unexport CARGO_MANIFEST_DIR CARGO_MANIFEST_PATH CARGO_MANIFEST_LINKS CARGO_PKG_NAME CARGO_PKG_VERSION \
  CARGO_PKG_VERSION_MAJOR CARGO_PKG_VERSION_MINOR CARGO_PKG_VERSION_PATCH CARGO_PKG_VERSION_PRE CARGO_PKG_AUTHORS \
  CARGO_PKG_DESCRIPTION CARGO_PKG_HOMEPAGE CARGO_PKG_REPOSITORY CARGO_PKG_LICENSE CARGO_PKG_LICENSE_FILE \
  CARGO_PKG_README CARGO_PKG_RUST_VERSION CARGO_CRATE_NAME CARGO_PRIMARY_PACKAGE CARGO_TARGET_TMPDIR OUT_DIR

.PHONY: help bootstrap dev reset test test-rust check-template dlq keys query replay logs trace lint bench bench-cold-start bench-powertools bench-local bench-event-store bench-consumer bench-packing cost soak schemas fuzz build deploy lock clean

help: ## This list.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

bootstrap: ## Install the pinned tools (fast when already installed).
	@scripts/bootstrap.sh

dev: ## Run the whole pipeline locally (Ctrl-C stops it).
	@scripts/dev.sh

test: bootstrap check-template test-rust ## Run all tests: template checks, unit, handler and integration tests.

test-rust:
	PATH="$(CURDIR)/$(VENV):$$PATH" cargo test --workspace --locked

check-template: bootstrap ## cfn-lint, sam validate (--lint), cfn-lint on the SAM-expanded template.
	@scripts/check-template.sh

.PHONY: openapi
openapi: bootstrap ## The API contract: openapi.yaml against the code, and schemathesis against the local stack.
	PATH="$(CURDIR)/$(VENV):$$PATH" cargo test -p tubes-tests --test it --locked -- contract::

# The commands below run the workspace's binaries as `make dev` builds them: every binary at once, with one
# feature set, so none of them compiles again what another built (`cargo run -p X` would: other features).
RUN := cargo build -q --workspace --bins && "$${CARGO_TARGET_DIR:-target}"/debug

dlq: ## Dead letters of the local stack: make dlq ARGS="list" (list [QUEUE] | show QUEUE ID [--raw] | delete QUEUE ID | purge QUEUE | redrive QUEUE [ID] [--stream S | --to-function F] [--wait SECS]; --help).
	AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$${TUBES_MOTO_PORT:-4566} \
	AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$${TUBES_KINESIS_PORT:-4568} \
	AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$${TUBES_HTTP_PORT:-9000} \
	AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	  $(RUN)/tubes-dlq $(ARGS)

keys: ## Mint credentials for sources and readers: make keys ARGS="api-key SOURCE KEY_ID" (signing-secret | demo DIR | completions SHELL; --help).
	@$(RUN)/tubes-keys $(ARGS)

STATE ?= $(or $(TUBES_STATE_DIR),.local/dev)
# SQL from the environment ($$SQL), not pasted into the recipe: quotes in it stay as written.
query: bootstrap ## SQL over the local event store, as in Athena (docs/event-store.md): make query SQL="select type, count(*) from events group by 1" (ARGS="--format csv", "--no-sync").
	@test -n "$$SQL" || { echo 'usage: make query SQL="select type, count(*) from events group by 1" [ARGS="--format csv|json --no-sync"]' >&2; exit 2; }
	@$(VENV)/python scripts/query.py --cache "$(STATE)/archive" $(ARGS) --sql "$$SQL"

replay: ## Replay the local event store: make replay ARGS="--to-stream tubes-EventStream --type payment.received --dry-run" (--to-function F | --to-read-model V [--switch]; --with-stream S; tubes-replay --help).
	ARCHIVE_BUCKET=tubes-archivebucket READ_MODELS_TABLE=tubes-ReadModelsTable \
	AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$${TUBES_HTTP_PORT:-9000} \
	AWS_ENDPOINT_URL_S3=http://127.0.0.1:$${TUBES_MOTO_PORT:-4566} \
	AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$${TUBES_MOTO_PORT:-4566} \
	AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$${TUBES_KINESIS_PORT:-4568} \
	AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	  $(RUN)/tubes-replay --state $(STATE)/replay.state.json $(ARGS)

logs: ## Follow the local functions' logs, pretty-printed (FUNCTION=payments: one function).
	@ls $(STATE)/logs/*$(FUNCTION)*.log >/dev/null 2>&1 || { echo "no logs under $(STATE)/logs yet: make dev first" >&2; exit 1; }
	@cargo build -q --workspace --bins
	tail -q -n 20 -F $(STATE)/logs/*$(FUNCTION)*.log | "$${CARGO_TARGET_DIR:-target}"/debug/tubes-local logs pretty

trace: ## Everything one event id, trace id or request id touched, across functions, in time order (ID=...).
	@test -n "$(ID)" || { echo "usage: make trace ID=<event id | trace id | request id>" >&2; exit 2; }
	@$(RUN)/tubes-local logs trace "$(ID)" --dir $(STATE)/logs

lint: ## rustfmt and clippy, as CI runs them.
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

bench: ## The hot paths, each as a ratio to its baseline (ARGS=NAME runs those whose name contains it).
	cargo bench -p tubes-bench --bench hot_paths -- $(ARGS)

COLD_START_FUNCTIONS = -p tubes-ingest -p tubes-consumer-payments -p tubes-consumer-signups -p tubes-consumer-unsubscribes \
	-p tubes-consumer-notifications -p tubes-archive -p tubes-consumer-projections -p tubes-query
bench-cold-start: ## Each function's cold start (spawn → first GET /next) against a hello-world lambda_runtime binary; fails over +5 ms (ARGS: --runs N, names).
	cargo build -q --profile bench --bins $(COLD_START_FUNCTIONS) -p tubes-bench
	$(or $(CARGO_TARGET_DIR),target)/release/cold_start $(ARGS)

bench-powertools: bootstrap ## The consumer's decode against Powertools' parser models (rebuilt with pydantic) on the same 10,000-record file: how many times faster (ARGS: --rounds N).
	cargo build -q --profile bench --bin decode_payload -p tubes-bench
	$(VENV)/python benches/powertools.py --bin $(or $(CARGO_TARGET_DIR),target)/release/decode_payload $(ARGS)

bench-local: bootstrap ## Local stack figures: time to ready, 202 → consumer latency, sustained events/s (60 s), query latency.
	PATH="$(CURDIR)/$(VENV):$$PATH" cargo run -q -p tubes-tests --example local_stack_figures -- $(or $(DURATION),60)

EVENTS ?= 100000
FAULT_EVERY ?= 30
soak: bootstrap ## 100,000 events through the local stack (release builds) under a fault schedule, reconciled from the stores (EVENTS, FAULT_EVERY).
	PATH="$(CURDIR)/$(VENV):$$PATH" cargo run -q -p tubes-tests --example soak -- $(EVENTS) $(FAULT_EVERY)

schemas: ## Regenerate schemas/ (the events' JSON Schemas) from the catalogue's types.
	UPDATE_SCHEMAS=1 cargo test -q -p tubes-contract --test schemas

bench-event-store: bootstrap ## Event store and read side figures on moto and kinesis-local: archive per invocation, rebuild, replay, query latency (EVENTS_FIGURES events, default 100000).
	PATH="$(CURDIR)/$(VENV):$$PATH" cargo run -q --release -p tubes-tests --example event_store_figures -- $(or $(EVENTS_FIGURES),100000)

bench-consumer: bootstrap ## Consumer records/s per invocation with idempotency records in DynamoDB (moto) vs without.
	PATH="$(CURDIR)/$(VENV):$$PATH" cargo run -q --release -p tubes-tests --example consumer_figures

bench-packing: bootstrap ## Events a shard takes, packed and not: ingest writing 100-event batches to kinesis-local (REQUESTS, default 200).
	cargo run -q --release -p tubes-tests --example packing_figures -- $(or $(REQUESTS),200)

cost: ## Write docs/cost.md: $ per million events (single POSTs, batches, packed batches) from measured figures and docs/prices.json.
	cargo run -q --release -p tubes-tests --example cost_model

FUZZ_SECS ?= 60
fuzz: ## Fuzz the ingest handler and the envelope parser (cargo fuzz on nightly; FUZZ_SECS per target).
	@test -x .tools/bin/cargo-fuzz || cargo install cargo-fuzz --version 0.13.2 --locked --root .tools
	for t in ingest_request envelope; do \
	  PATH="$(CURDIR)/.tools/bin:$$PATH" cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECS) -rss_limit_mb=4096 || exit 1; \
	done

build: bootstrap ## sam build: every function with cargo lambda, release, arm64.
	PATH="$(CURDIR)/$(VENV):$$PATH" $(VENV)/sam build

deploy: build ## sam deploy --guided (needs AWS credentials).
	$(VENV)/sam deploy --guided

lock: ## Re-pin the transitive Python packages after editing tools/requirements.txt.
	rm -rf .venv && python3 -m venv .venv && $(VENV)/pip install -q -r tools/requirements.txt
	{ echo "# Every transitive Python package, pinned (pip freeze of requirements.txt). Regenerate: make lock"; \
	  $(VENV)/pip freeze | grep -v '^-e'; } > tools/constraints.txt
	scripts/bootstrap.sh

reset: ## Clear the local stack's state (streams, checkpoints, tables, queues, logs: TUBES_STATE_DIR) and nothing else.
	@scripts/reset.sh

clean: ## Remove build output and local state (not the installed tools).
	cargo clean
	rm -rf .aws-sam .local

# tubes-dev: the local stack of `make dev` as a daily tool (tubes-dev --help; the ports and state directory from
# TUBES_HTTP_PORT, TUBES_KINESIS_PORT, TUBES_MOTO_PORT, TUBES_STATE_DIR as `make dev` reads them).
.PHONY: send story tail invoke look
DEV = $(RUN)/tubes-dev

send: ## POST an example event to the local stack: make send TYPE=payment.received ARGS="--set amount=999 --count 3".
	@test -n "$(TYPE)" || { echo 'usage: make send TYPE=payment.received [ARGS="--set amount=999 --subject acc_42 --count N"]' >&2; exit 2; }
	@$(DEV) send "$(TYPE)" $(ARGS)

story: ## Play the README's story on the local stack and show its effects (ledger, profile, e-mails).
	@$(DEV) story $(ARGS)

tail: ## Follow the local stream, decoded, one line per event: make tail ARGS="--type payment.received --from latest".
	@$(DEV) tail $(ARGS)

invoke: ## Invoke one consumer without the stream: make invoke FUNCTION=payments ARGS="--sample payment.received --set amount=999" (or --event FILE).
	@test -n "$(FUNCTION)" || { echo 'usage: make invoke FUNCTION=payments ARGS="--sample payment.received | --event FILE"' >&2; exit 2; }
	@$(DEV) invoke "$(FUNCTION)" $(ARGS)

look: ## The local state: make look ARGS="ledger acc_42" (profile USER | outbox --limit N).
	@test -n "$(ARGS)" || { echo 'usage: make look ARGS="ledger ACCOUNT | profile USER | outbox [--limit N]"' >&2; exit 2; }
	@$(DEV) look $(ARGS)

#!/usr/bin/env bash
# `make dev`: the whole pipeline on this machine, on loopback only, driven by template.yaml.
#   1. the local AWS endpoints: kinesis-local (Kinesis) and moto (SQS dead-letter queues, Secrets Manager,
#      DynamoDB idempotency records);
#   2. the template's streams, queues, secrets and tables, created if missing (tubes-local provision);
#   3. every function under `cargo lambda watch` (live reload), with the template's environment resolved
#      to the local endpoints; POST http://127.0.0.1:${TUBES_HTTP_PORT:-9000}/events;
#   4. the Kinesis event source mapping emulator with its live view (tubes-local run).
# Settings (environment): TUBES_TEMPLATE (default template.yaml), TUBES_STATE_DIR (.local/dev), TUBES_HTTP_PORT
# (9000), TUBES_KINESIS_PORT (4568; 4567 is its TLS port), TUBES_MOTO_PORT (4566), TUBES_SUMMARY_SECS (10),
# TUBES_NO_RELOAD=1 (no live reload: tests want the binaries they started with).
# Ctrl-C stops everything this script started. State (stream data, checkpoints, logs) lives in .local/dev.
# Supervised: a child that exits is restarted and the others keep running (moto's tables, the stream's data and
# the mapping's checkpoints survive it); a function instance that ends is replaced by restarting `cargo lambda
# watch`, which does not replace one itself. A child that keeps dying (5 restarts within a minute) stops the stack.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
say() { echo "dev: [$(elapsed) s] $*" >&2; }
scripts/bootstrap.sh

kinesis_port=${TUBES_KINESIS_PORT:-4568}
moto_port=${TUBES_MOTO_PORT:-4566}
http_port=${TUBES_HTTP_PORT:-9000}
template=${TUBES_TEMPLATE:-template.yaml}
# kinesis-local also takes the port below its own (TLS): say so rather than fail later with "address in use".
ports=("$http_port" "$moto_port" "$kinesis_port" "$((kinesis_port - 1))")
if [[ $(printf '%s\n' "${ports[@]}" | sort -u | wc -l) -ne 4 ]]; then
  echo "dev: ports clash: HTTP $http_port, moto $moto_port, kinesis-local $kinesis_port (and its TLS port $((kinesis_port - 1)))" >&2
  exit 2
fi
state=${TUBES_STATE_DIR:-.local/dev}
mkdir -p "$state"
state=$(cd "$state" && pwd)

export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
export AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:${kinesis_port}"
export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:${moto_port}"
export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:${moto_port}"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:${moto_port}"
export PATH="$root/.venv/bin:$PATH"

declare -A pid_of=()
stop_group() { # pid: TERM its process group, then KILL what is left after 5 s
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 -- "-$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pid_of[@]}"; do stop_group "$pid"; done
  echo "dev: stopped everything it started" >&2
}
trap cleanup EXIT INT TERM

# Each child runs in its own process group (setsid), so stopping it stops its children too.
spawn() { local name=$1; shift; setsid "$@" & pid_of[$name]=$!; }

wait_http() { # name url pid
  for _ in $(seq 1 600); do
    if curl -s -o /dev/null -m 1 -X POST -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/x' \
      -H 'X-Amz-Target: Kinesis_20131202.ListStreams' -H 'Content-Type: application/x-amz-json-1.1' -d '{}' "$2"; then
      return 0
    fi
    kill -0 "$3" 2>/dev/null || { echo "dev: $1 exited; see $state/$1.log" >&2; return 1; }
    sleep 0.1
  done
  echo "dev: $1 not ready" >&2; return 1
}

# Build everything first, so the first invocation of each function does not wait for a compile.
say "building"
cargo build --workspace --bins --quiet

# The children, each a function that starts it (logs append: a restart keeps what came before).
start_kinesis() {
  # kinesis-local binds every interface; it is only ever addressed on 127.0.0.1. It persists its streams.
  KINESIS_MOCK_CERT_PATH="$root/tools/node_modules/kinesis-local/server.json" \
  KINESIS_MOCK_PLAIN_PORT="$kinesis_port" KINESIS_MOCK_TLS_PORT="$((kinesis_port - 1))" \
  CREATE_STREAM_DURATION=0ms LOG_LEVEL=WARN SHOULD_PERSIST_DATA=true PERSIST_PATH="$state/kinesis" \
    spawn kinesis node tools/node_modules/kinesis-local/main.js >>"$state/kinesis.log" 2>&1
  wait_http kinesis "$AWS_ENDPOINT_URL_KINESIS" "${pid_of[kinesis]}"
}
start_moto() {
  # moto with DynamoDB requests one at a time, so conditional writes are atomic as in DynamoDB (see the script).
  spawn moto .venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" >>"$state/moto.log" 2>&1
  wait_http moto "$AWS_ENDPOINT_URL_SQS" "${pid_of[moto]}"
}
provision() { # the template's streams, queues, secrets and tables, created if missing
  "${CARGO_TARGET_DIR:-target}"/debug/tubes-local provision --template "$state/template.json" \
    --env-out "$state/functions.env" "${sources[@]}"
}
reload=()
if [[ "${TUBES_NO_RELOAD:-}" == 1 ]]; then reload=(--ignore-changes); fi
start_watch() {
  spawn watch cargo lambda watch "${reload[@]}" --invoke-address 127.0.0.1 --invoke-port "$http_port" --concurrency 4 \
    --env-file "$state/functions.env" \
    --env-var "AWS_ENDPOINT_URL_KINESIS=$AWS_ENDPOINT_URL_KINESIS" --env-var "AWS_ENDPOINT_URL_SQS=$AWS_ENDPOINT_URL_SQS" \
    --env-var "AWS_ENDPOINT_URL_SECRETS_MANAGER=$AWS_ENDPOINT_URL_SECRETS_MANAGER" \
    --env-var "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" \
    --env-var AWS_REGION=us-east-1 --env-var AWS_ACCESS_KEY_ID=local --env-var AWS_SECRET_ACCESS_KEY=local \
    --env-var AWS_EC2_METADATA_DISABLED=true --env-var "TUBES_STATE_DIR=$state" \
    --env-var "TUBES_OUTBOX=$state/outbox.jsonl" >>"$state/functions.log" 2>&1
  for _ in $(seq 1 600); do
    # Long enough for ingest's first (cold) answer: a client that gives up leaves the runtime an orphan invocation.
    curl -s -o /dev/null -m 60 "http://127.0.0.1:${http_port}/" && return 0
    kill -0 "${pid_of[watch]}" 2>/dev/null || { echo "dev: cargo lambda watch exited; see $state/functions.log" >&2; return 1; }
    sleep 0.1
  done
  return 1
}
start_esm() {
  spawn esm "${CARGO_TARGET_DIR:-target}"/debug/tubes-local run --template "$state/template.json" \
    --lambda "http://127.0.0.1:${http_port}" --state "$state" --log "$state/esm.jsonl" \
    --summary-secs "${TUBES_SUMMARY_SECS:-10}"
}
# A function instance's end, as cargo lambda watch logs it (it leaves the instance dead).
instance_ends() { grep -cE 'command (exited|killed)' "$state/functions.log" 2>/dev/null || true; }

say "kinesis-local on 127.0.0.1:${kinesis_port}, moto (SQS) on 127.0.0.1:${moto_port}"
start_kinesis || exit 1
start_moto || exit 1

say "emulators ready; resources"
.venv/bin/python scripts/expand_template.py "$template" "$state/template.json" >/dev/null
# Closed locally too: the sources secret gets a demo source (an API key and a signing secret, minted once per
# state directory) next to whatever sources the template declares.
sources=()
if .venv/bin/python scripts/demo_sources.py "$state/template.json" "$state" >"$state/sources.json"; then
  sources=(--secret-file "SourcesSecret=$state/sources.json")
fi
provision

say "cargo lambda watch on 127.0.0.1:${http_port}"
start_watch || exit 1
seen_ends=$(instance_ends)
start_esm
echo "dev: ready in $(elapsed) s. POST http://127.0.0.1:${http_port}/events   (function logs: $state/functions.log)" >&2
if [[ -f "$state/demo.env" ]]; then
  echo "dev: the demo source's credentials (also in $state/demo.env; . it in your shell):" >&2
  sed 's/^/dev:   /' "$state/demo.env" >&2
fi

# Supervision. Restart times per child, to stop a crash loop.
declare -A restarts=()
restart() { # name reason
  local name=$1 now recent=()
  now=$(date +%s)
  for t in ${restarts[$name]:-}; do (( now - t < 60 )) && recent+=("$t"); done
  if (( ${#recent[@]} >= 5 )); then
    echo "dev: $name keeps failing ($2; 5 restarts within a minute): stopping. See $state/$name.log" >&2
    exit 1
  fi
  restarts[$name]="${recent[*]} $now"
  say "$name: $2; restarting it (the others keep running)"
  [[ -n "${pid_of[$name]:-}" ]] && stop_group "${pid_of[$name]}"
  case $name in
    kinesis) start_kinesis ;;
    # moto keeps its state in memory: a new one gets the template's resources again (idempotency records and
    # dead letters of the old one are gone, as they would be if the table or queue were recreated).
    moto) start_moto && provision ;;
    watch) start_watch; seen_ends=$(instance_ends) ;;
    esm) start_esm ;;
  esac || true
}
while true; do
  for name in kinesis moto watch esm; do
    kill -0 "${pid_of[$name]}" 2>/dev/null || restart "$name" "it exited"
  done
  ends=$(instance_ends)
  if (( ends > seen_ends )); then
    restart watch "a function instance ended, and cargo lambda watch does not replace one"
  fi
  sleep 0.5
done

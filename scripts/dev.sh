#!/usr/bin/env bash
# `make dev`: the whole pipeline on this machine, on loopback only, driven by template.yaml.
#   1. the local AWS endpoints: kinesis-local (Kinesis) and moto (SQS dead-letter queues, Secrets Manager,
#      DynamoDB idempotency records and tables, S3 for the event store);
#   2. the template's streams, queues, secrets, tables and buckets, created if missing (tubes-local provision);
#   3. every function under `cargo lambda watch` (live reload), with the template's environment resolved
#      to the local endpoints; POST http://127.0.0.1:${TUBES_HTTP_PORT:-9000}/events;
#   4. the Kinesis event source mapping emulator with its live view (tubes-local run).
# Settings (environment): TUBES_TEMPLATE (default template.yaml), TUBES_STATE_DIR (.local/dev), TUBES_HTTP_PORT
# (9000), TUBES_KINESIS_PORT (4568; 4567 is its TLS port), TUBES_MOTO_PORT (4566), TUBES_SUMMARY_SECS (10),
# TUBES_NO_RELOAD=1 (no live reload: tests want the binaries they started with), TUBES_RELEASE=1 (release builds of
# the functions and the mapping emulator: the soak's setting), TUBES_KINESIS=kinesis-local|kinesalite (the Kinesis
# emulator, default kinesis-local: the most complete API, but its writes slow down as the stream fills, from
# ~1,200 to ~170 records/s by 60,000 records; kinesalite keeps ~6,000 records/s at 150,000 and is what a long
# soak needs, with streams addressed by name, which is all the functions and the mapping emulator do),
# TUBES_FUNCTIONS_KINESIS_ENDPOINT (the functions' Kinesis endpoint, e.g. a fault-injecting proxy in front of the
# emulator; the mapping emulator and provisioning still talk to the emulator itself), TUBES_PARENT_PID (stop when
# that process is gone: tests set it), TUBES_LOG (the functions' log directives, as RUST_LOG, default info,tubes=debug,
# lambda_runtime::runtime=error), TUBES_MOTO_DYNAMODB_PORT (a second moto on that port holds the DynamoDB tables of
# the functions named in TUBES_MOTO_DYNAMODB_FUNCTIONS, default tubes-consumer-payments: moto answers DynamoDB one
# request at a time on one core, and the soak needs the second; with TUBES_NO_RELOAD=1 only).
# Ctrl-C stops everything this script started. State (stream data, checkpoints, logs) lives in .local/dev.
# Supervised: a child that exits is restarted and the others keep running (moto's tables, the stream's data and
# the mapping's checkpoints survive it); a function instance that ends is replaced (alone without live reload; by
# restarting `cargo lambda watch`, which does not replace one itself, with it). A child that keeps dying (5
# restarts within a minute) stops the stack.
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
moto2_port=${TUBES_MOTO_DYNAMODB_PORT:-}
moto2_endpoint=${moto2_port:+http://127.0.0.1:$moto2_port}
moto2_functions=" ${TUBES_MOTO_DYNAMODB_FUNCTIONS:-tubes-consumer-payments} "
ports=("$http_port" "$moto_port" "$kinesis_port" "$((kinesis_port - 1))" ${moto2_port:+"$moto2_port"})
if [[ $(printf '%s\n' "${ports[@]}" | sort -u | wc -l) -ne ${#ports[@]} ]]; then
  echo "dev: ports clash: HTTP $http_port, moto $moto_port${moto2_port:+ and $moto2_port}, kinesis-local $kinesis_port (and its TLS port $((kinesis_port - 1)))" >&2
  exit 2
fi
if [[ -n $moto2_port && "${TUBES_NO_RELOAD:-}" != 1 ]]; then
  # With live reload cargo lambda watch starts the functions, all with one environment.
  echo "dev: TUBES_MOTO_DYNAMODB_PORT needs TUBES_NO_RELOAD=1 (this script starting each function itself)" >&2
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
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:${moto_port}"
export PATH="$root/.venv/bin:$PATH"

declare -A pid_of=() instance_pid=() instance_starts=() # children; function instances (no live reload)
stop_group() { # pid: TERM its process group, then KILL what is left after 5 s
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 -- "-$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}
stop_watch() { # cargo lambda watch and the function instances it started
  local children
  children=$(pgrep -P "${pid_of[watch]}" || true)
  stop_group "${pid_of[watch]}"
  # shellcheck disable=SC2086 # a list of PIDs
  [[ -z $children ]] || kill -KILL $children 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  (( ${#instance_pid[@]} == 0 )) || stop_instances
  [[ -z "${pid_of[watch]:-}" ]] || stop_watch
  for pid in "${pid_of[@]}"; do stop_group "$pid"; done
  echo "dev: stopped everything it started" >&2
}
# A signal ends the script (and so runs cleanup, on EXIT): a trap that only cleaned up would return to the
# supervision loop, which would restart the children it had just stopped.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

profile=debug
build_flags=()
if [[ "${TUBES_RELEASE:-}" == 1 ]]; then profile=release; build_flags=(--release); fi
kinesis_engine=${TUBES_KINESIS:-kinesis-local}
case $kinesis_engine in
  kinesis-local|kinesalite) ;;
  *) echo "dev: TUBES_KINESIS=$kinesis_engine: kinesis-local or kinesalite" >&2; exit 2 ;;
esac
bin="${CARGO_TARGET_DIR:-target}/$profile"

# Build everything first, so the first invocation of each function does not wait for a compile.
say "building ($profile)"
cargo build --workspace --bins --quiet "${build_flags[@]}"

# The children, each a function that starts it (logs append: a restart keeps what came before).
start_kinesis() {
  if [[ $kinesis_engine == kinesalite ]]; then
    # On loopback only; its LevelDB under the state directory keeps the streams across restarts.
    mkdir -p "$state/kinesalite"
    spawn kinesis node -e "require('$root/tools/node_modules/kinesalite')({path: '$state/kinesalite', shardLimit: 100,
      createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0}).listen($kinesis_port, '127.0.0.1')" \
      >>"$state/kinesis.log" 2>&1
    wait_http kinesis "$AWS_ENDPOINT_URL_KINESIS" "${pid_of[kinesis]}"
    return
  fi
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
start_moto2() { # the second moto (TUBES_MOTO_DYNAMODB_PORT): DynamoDB only
  spawn moto2 .venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$moto2_port" >>"$state/moto2.log" 2>&1
  wait_http moto2 "$moto2_endpoint" "${pid_of[moto2]}"
}
provision() { # the template's streams, queues, secrets and tables, created if missing
  "$bin"/tubes-local provision --template "$state/template.json" \
    --env-out "$state/functions.env" "${sources[@]}" &&
  # Locally the functions log their per-record lines too (DEBUG for tubes' own crates; `make trace` follows
  # them), without lambda_runtime's warning about the AWS_LAMBDA_MAX_CONCURRENCY that cargo lambda watch sets.
  # In the env file, not an --env-var: cargo lambda watch splits those at commas.
  # Quoted: its parser refuses the bare value.
  echo "TUBES_LOG=\"${TUBES_LOG:-info,tubes=debug,lambda_runtime::runtime=error}\"" >>"$state/functions.env"
}
provision2() { # the template's tables on the second moto too (the other resources exist already: left alone)
  AWS_ENDPOINT_URL_DYNAMODB="$moto2_endpoint" "$bin"/tubes-local provision \
    --template "$state/template.json" --env-out "$state/functions.moto2.env" "${sources[@]}"
}
# Live reload (make dev): cargo lambda watch starts each function's instances (`cargo run`) on demand, and
# restarts them when a source changes. Without it (TUBES_NO_RELOAD=1: tests, the soak), cargo lambda watch serves
# only the Lambda APIs (invoke and runtime) and this script runs INSTANCES instances of each function's built
# binary itself, supervised one by one: a killed instance is replaced alone, in milliseconds, where cargo lambda
# watch would leave it dead, and restarting all of cargo lambda watch to replace it would cold-start every
# function (each instance a `cargo run`).
instances=4
watch_mode=(--concurrency "$instances")
direct=0
if [[ "${TUBES_NO_RELOAD:-}" == 1 ]]; then watch_mode=(--ignore-changes --only-lambda-apis); direct=1; fi
# Logs: one file per function (JSON lines), appended across restarts, rotated over 10 MB when opened. With live
# reload, cargo lambda watch prints every function's lines: `tubes-local logs split` routes them.
logs="$state/logs"
mkdir -p "$logs"
rotate() { [[ ! -f $1 ]] || (( $(stat -c %s "$1") <= 10485760 )) || mv -f "$1" "$1.1"; }
# What every function gets besides the template's variables (functions.env), however it is started.
function_vars=("AWS_ENDPOINT_URL_KINESIS=${TUBES_FUNCTIONS_KINESIS_ENDPOINT:-$AWS_ENDPOINT_URL_KINESIS}"
  "AWS_ENDPOINT_URL_SQS=$AWS_ENDPOINT_URL_SQS" "AWS_ENDPOINT_URL_SECRETS_MANAGER=$AWS_ENDPOINT_URL_SECRETS_MANAGER"
  "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" "AWS_ENDPOINT_URL_S3=$AWS_ENDPOINT_URL_S3" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local
  AWS_SECRET_ACCESS_KEY=local AWS_EC2_METADATA_DISABLED=true "TUBES_STATE_DIR=$state"
  "TUBES_OUTBOX=$state/outbox.jsonl")
functions_env() { # the functions' environment, as NAME=VALUE arguments
  local line
  fenv=()
  while IFS= read -r line; do
    [[ $line =~ ^([A-Za-z_0-9]+)=\"(.*)\"$ ]] && line="${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
    [[ -n $line ]] && fenv+=("$line")
  done <"$state/functions.env"
  fenv+=("${function_vars[@]}")
}
start_instance() { # binary index: one instance of a function, on cargo lambda watch's runtime API
  local b=$1 i=$2 own=()
  [[ -z $moto2_port || $moto2_functions != *" $b "* ]] || own=("AWS_ENDPOINT_URL_DYNAMODB=$moto2_endpoint")
  setsid env "${fenv[@]}" "${own[@]}" AWS_LAMBDA_FUNCTION_NAME="$b" 'AWS_LAMBDA_FUNCTION_VERSION=$LATEST' \
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/$b" AWS_LAMBDA_LOG_STREAM_NAME="local-$i" \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:${http_port}/.rt/$b" "$bin/$b" >>"$logs/$b.log" 2>&1 &
  instance_pid["$b#$i"]=$!
}
start_instances() {
  local b i
  functions_env
  for b in "${function_binaries[@]}"; do
    rotate "$logs/$b.log"
    for i in $(seq 1 "$instances"); do start_instance "$b" "$i"; done
  done
}
stop_instances() { # TERM every instance, then KILL what is left after 5 s
  local pid left
  for pid in "${instance_pid[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    left=0
    for pid in "${instance_pid[@]}"; do kill -0 -- "-$pid" 2>/dev/null && left=1; done
    (( left )) || break
    sleep 0.1
  done
  for pid in "${instance_pid[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
start_watch() {
  local var env_args=()
  for var in "${function_vars[@]}"; do env_args+=(--env-var "$var"); done
  if (( direct )); then
    # The instances write their own files; cargo lambda watch only serves the APIs.
    rotate "$logs/watch.log"
    spawn watch cargo lambda watch "${watch_mode[@]}" "${build_flags[@]}" --invoke-address 127.0.0.1 \
      --invoke-port "$http_port" --env-file "$state/functions.env" "${env_args[@]}" >>"$logs/watch.log" 2>&1
  else
    spawn watch cargo lambda watch "${watch_mode[@]}" "${build_flags[@]}" --invoke-address 127.0.0.1 \
      --invoke-port "$http_port" --env-file "$state/functions.env" "${env_args[@]}" \
      > >("$bin"/tubes-local logs split --dir "$logs") 2>&1
  fi
  instances_seen=" "
  if (( direct )); then
    for _ in $(seq 1 600); do
      (echo >"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null && break
      kill -0 "${pid_of[watch]}" 2>/dev/null || { echo "dev: cargo lambda watch exited; see $logs/watch.log" >&2; return 1; }
      sleep 0.1
    done
    (( ${#instance_pid[@]} )) || start_instances
  fi
  for _ in $(seq 1 600); do
    # Long enough for ingest's first (cold) answer: a client that gives up leaves the runtime an orphan invocation.
    curl -s -o /dev/null -m 60 "http://127.0.0.1:${http_port}/" && return 0
    kill -0 "${pid_of[watch]}" 2>/dev/null || { echo "dev: cargo lambda watch exited; see $logs/watch.log" >&2; return 1; }
    sleep 0.1
  done
  return 1
}
start_esm() {
  spawn esm "$bin"/tubes-local run --template "$state/template.json" \
    --lambda "http://127.0.0.1:${http_port}" --state "$state" --log "$state/esm.jsonl" \
    --summary-secs "${TUBES_SUMMARY_SECS:-10}"
}
# Function instances: the workspace's binaries (`tubes-…`), children of cargo lambda watch, each in a session of
# its own (so stopping watch's process group does not stop them: stop_watch does). One that
# was seen and is gone has ended, and cargo lambda watch does not replace it (nor reliably log its end): its
# function's next invocations would hang. Sets `ended` to the PID of one that ended, if any, and remembers the
# living.
instances_seen=" "
instance_ended() {
  local now pid
  ended=""
  now=" $({ pgrep -P "${pid_of[watch]}" '^tubes-' || true; } | tr '\n' ' ')"
  for pid in $instances_seen; do
    [[ $now == *" $pid "* ]] || { ended=$pid; break; }
  done
  instances_seen=$now
}

say "$kinesis_engine on 127.0.0.1:${kinesis_port}, moto (SQS, DynamoDB, S3) on 127.0.0.1:${moto_port}"
start_kinesis || exit 1
start_moto || exit 1
if [[ -n $moto2_port ]]; then
  say "moto (DynamoDB of${moto2_functions% }) on 127.0.0.1:${moto2_port}"
  start_moto2 || exit 1
fi

say "emulators ready; resources"
.venv/bin/python scripts/expand_template.py "$template" "$state/template.json" >/dev/null
# The functions' binaries (`Metadata.BuildProperties.Binary`, as `sam build` and the mapping emulator read them).
mapfile -t function_binaries < <(.venv/bin/python -c 'import json, sys
resources = json.load(open(sys.argv[1])).get("Resources", {})
for r in resources.values():
    binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
    if r.get("Type") == "AWS::Lambda::Function" and binary:
        print(binary)' "$state/template.json")
# Closed locally too: the sources secret gets a demo source (an API key and a signing secret, minted once per
# state directory) next to whatever sources the template declares.
sources=()
rc=0
TUBES_BIN_DIR="$bin" .venv/bin/python scripts/demo_sources.py "$state/template.json" "$state" >"$state/sources.json" || rc=$?
case $rc in
  0) sources=(--secret-file "SourcesSecret=$state/sources.json") ;;
  3) ;; # the template has no sources secret
  *) echo "dev: minting the demo source failed (scripts/demo_sources.py exited $rc)" >&2; exit 1 ;;
esac
# The query API's demo reader (a read-only key, minted with the demo source), if the template has readers.
if [[ $rc == 0 && -f "$state/demo-readers.json" ]] && grep -q '"ReadersSecret"' "$state/template.json"; then
  sources+=(--secret-file "ReadersSecret=$state/demo-readers.json")
fi
provision
[[ -z $moto2_port ]] || provision2

say "cargo lambda watch on 127.0.0.1:${http_port}"
start_watch || exit 1
start_esm
echo "dev: ready in $(elapsed) s. POST http://127.0.0.1:${http_port}/events   (logs: make logs; one file per function in $logs)" >&2
if [[ -f "$state/demo.env" ]]; then
  echo "dev: the demo source's credentials (also in $state/demo.env; . it in your shell):" >&2
  sed 's/^/dev:   /' "$state/demo.env" >&2
fi

# Supervision. Start times per child (and per function's instances), to stop a crash loop.
declare -A restarts=()
record_start() { # array key: keeps the key's starts of the last minute, adds now; sets `recent` to how many it kept
  local -n starts=$1
  local now t kept=()
  now=$(date +%s)
  for t in ${starts[$2]:-}; do (( now - t < 60 )) && kept+=("$t"); done
  starts[$2]="${kept[*]} $now"
  recent=${#kept[@]}
}
restart() { # name reason
  local name=$1
  record_start restarts "$name"
  if (( recent >= 5 )); then
    echo "dev: $name keeps failing ($2; 5 restarts within a minute): stopping. See $state/$name.log" >&2
    exit 1
  fi
  say "$name: $2; restarting it (the others keep running)"
  if [[ $name == watch ]]; then stop_watch; elif [[ -n "${pid_of[$name]:-}" ]]; then stop_group "${pid_of[$name]}"; fi
  case $name in
    kinesis) start_kinesis ;;
    # moto keeps its state in memory: a new one gets the template's resources again (idempotency records and
    # dead letters of the old one are gone, as they would be if the table or queue were recreated).
    moto) start_moto && provision ;;
    moto2) start_moto2 && provision2 ;;
    watch) start_watch ;;
    esm) start_esm ;;
  esac || true
}
while true; do
  for name in "${!pid_of[@]}"; do
    kill -0 "${pid_of[$name]}" 2>/dev/null || restart "$name" "it exited"
  done
  if (( direct )); then
    for key in "${!instance_pid[@]}"; do
      kill -0 "${instance_pid[$key]}" 2>/dev/null && continue
      record_start instance_starts "${key%#*}"
      if (( recent >= 5 * instances )); then
        echo "dev: ${key%#*} keeps failing (its instances ended $((5 * instances)) times within a minute): stopping. See $logs/${key%#*}.log" >&2
        exit 1
      fi
      say "instance ${key#*#} of ${key%#*} ended; starting another (the others keep running)"
      # Its invocation in flight will never be answered: the mapping emulator fails it on this line (as
      # Lambda's "Runtime exited"), not after the function's timeout.
      echo "${key%#*}" >>"$state/ended-instances"
      start_instance "${key%#*}" "${key#*#}"
    done
    ended=""
  else
    instance_ended
  fi
  if [[ -n $ended ]]; then
    # Not counted as a crash of cargo lambda watch: a live reload ends instances too.
    say "watch: function instance $ended ended, and cargo lambda watch does not replace one; restarting it"
    stop_watch
    start_watch || restart watch "it did not come back"
  fi
  # The process that started this stack is gone (a test or soak killed without cleaning up): stop with it.
  if [[ -n "${TUBES_PARENT_PID:-}" ]] && ! kill -0 "$TUBES_PARENT_PID" 2>/dev/null; then
    echo "dev: the process that started the stack ($TUBES_PARENT_PID) is gone; stopping" >&2
    exit 0
  fi
  sleep 0.5
done

#!/usr/bin/env bash
# `make dev`: the whole pipeline on this machine, on loopback only, driven by template.yaml.
#   1. the local AWS endpoints: kinesis-local (Kinesis) and moto (SQS dead-letter queues, Secrets Manager,
#      DynamoDB idempotency records and tables, S3 for the event store);
#   2. the template's streams, queues, secrets, tables and buckets, created if missing (tubes-local provision);
#   3. every function's binary, TUBES_INSTANCES instances each, on `cargo lambda watch`'s Lambda APIs (invoke and
#      runtime), with the template's environment resolved to the local endpoints, reloaded per function when its
#      sources change; POST http://127.0.0.1:${TUBES_HTTP_PORT:-9000}/events;
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
# TUBES_PERSIST (default 1: every emulator keeps its state under the state directory, so a restart finds the
# streams, checkpoints, tables, queues, buckets and secrets as they were; 0: none does, and a start begins empty).
# Ctrl-C stops everything this script started. State (stream data, checkpoints, moto's state, logs) lives in
# .local/dev; `make reset` removes it (and nothing else). Refuses to start when one of its ports is taken, or
# another stack runs on the same state directory, before touching anything.
# Supervised: a child that exits is restarted and the others keep running (moto's tables, the stream's data and
# the mapping's checkpoints survive it); a function instance that ends is replaced alone. A child that keeps dying
# (5 restarts within a minute) stops the stack. TUBES_INSTANCES (default 4, one per shard of the template's stream:
# each instance takes one invocation at a time) sets the instances per function; each holds 23–27 MB, so 1 runs
# the stack in about half the memory, its shards' batches taking turns.
set -euo pipefail
# Started from inside `cargo test` (the tests run this script), the environment holds cargo's variables for the test
# crate; build scripts that watch them (ring's: CARGO_PKG_NAME, CARGO_MANIFEST_DIR, OUT_DIR) would run again here and
# again at the user's next build. Builds from here see what a shell sees.
for var in $(compgen -e); do
  [[ ! $var =~ ^(CARGO_PKG_.*|CARGO_MANIFEST_.*|CARGO_CRATE_NAME|CARGO_PRIMARY_PACKAGE|CARGO_TARGET_TMPDIR|CARGO_BIN_EXE_.*|OUT_DIR)$ ]] || unset "$var"
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
say() { echo "dev: [$(elapsed) s] $*" >&2; }

kinesis_port=${TUBES_KINESIS_PORT:-4568}
moto_port=${TUBES_MOTO_PORT:-4566}
http_port=${TUBES_HTTP_PORT:-9000}
template=${TUBES_TEMPLATE:-template.yaml}
instances=${TUBES_INSTANCES:-4}
[[ $instances =~ ^[1-9][0-9]?$ ]] || { echo "dev: TUBES_INSTANCES=$instances: a number of instances per function, 1 to 99" >&2; exit 2; }
# kinesis-local also takes the port below its own (TLS): say so rather than fail later with "address in use".
moto2_port=${TUBES_MOTO_DYNAMODB_PORT:-}
moto2_endpoint=${moto2_port:+http://127.0.0.1:$moto2_port}
moto2_functions=" ${TUBES_MOTO_DYNAMODB_FUNCTIONS:-tubes-consumer-payments} "
ports=("$http_port" "$moto_port" "$kinesis_port" "$((kinesis_port - 1))" ${moto2_port:+"$moto2_port"})
if [[ $(printf '%s\n' "${ports[@]}" | sort -u | wc -l) -ne ${#ports[@]} ]]; then
  echo "dev: ports clash: HTTP $http_port, moto $moto_port${moto2_port:+ and $moto2_port}, kinesis-local $kinesis_port (and its TLS port $((kinesis_port - 1)))" >&2
  exit 2
fi
# Every port free, before anything is started or written: name who holds a taken one.
taken=()
port_names=([$http_port]="HTTP (TUBES_HTTP_PORT)" [$moto_port]="moto (TUBES_MOTO_PORT)"
  [$kinesis_port]="the Kinesis emulator (TUBES_KINESIS_PORT)" [$((kinesis_port - 1))]="kinesis-local's TLS port (TUBES_KINESIS_PORT - 1)")
[[ -z $moto2_port ]] || port_names[$moto2_port]="the second moto (TUBES_MOTO_DYNAMODB_PORT)"
for port in "${ports[@]}"; do
  listener=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -1)
  [[ -n $listener ]] || continue
  holder="another process"
  if [[ $listener =~ users:\(\(\"([^\"]+)\",pid=([0-9]+) ]]; then
    holder="${BASH_REMATCH[1]} (pid ${BASH_REMATCH[2]}: $(tr '\0' ' ' <"/proc/${BASH_REMATCH[2]}/cmdline" 2>/dev/null | cut -c1-120))"
  fi
  taken+=("port $port, for ${port_names[$port]}, is taken by $holder")
done
if (( ${#taken[@]} )); then
  printf 'dev: %s\n' "${taken[@]}" >&2
  echo "dev: nothing was started. Stop that process, or choose other ports (e.g. TUBES_HTTP_PORT=9100)." >&2
  exit 2
fi
state=${TUBES_STATE_DIR:-.local/dev}
if [[ -f $state/dev.pid ]] && kill -0 "$(cat "$state/dev.pid")" 2>/dev/null; then
  echo "dev: a stack (pid $(cat "$state/dev.pid")) already runs on $state; stop it first, or set TUBES_STATE_DIR" >&2
  exit 2
fi
scripts/bootstrap.sh
mkdir -p "$state"
state=$(cd "$state" && pwd)
echo $$ >"$state/dev.pid"
persist=${TUBES_PERSIST:-1}
case $persist in
  1) ;;
  0) # None persists: what a previous run left would point into streams and tables that are gone.
     rm -rf "$state/kinesis" "$state/kinesalite" "$state"/moto*.state "$state/checkpoints.json" ;;
  *) echo "dev: TUBES_PERSIST=$persist: 1 (keep the emulators' state) or 0 (start empty)" >&2; exit 2 ;;
esac

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
cleanup() {
  trap - EXIT INT TERM
  [[ -z "${build_pid:-}" ]] || kill -TERM "$build_pid" 2>/dev/null || true
  (( ${#instance_pid[@]} == 0 )) || stop_instances
  for pid in "${pid_of[@]}"; do stop_group "$pid"; done
  rm -f "$state/dev.pid"
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
# Every binary of the workspace with one feature set, which `make dlq`, `make replay`, `make logs` and the other
# commands build the same way: none of them compiles again what this built.
say "building the workspace's binaries ($profile): the first build compiles the AWS SDK and takes minutes; cargo's progress follows"
cargo build --workspace --bins "${build_flags[@]}"
say "built"
touch "$state/.reload-stamp" # live reload: changes after this build

# The children, each a function that starts it (logs append: a restart keeps what came before).
start_kinesis() {
  if [[ $kinesis_engine == kinesalite ]]; then
    # On loopback only; its LevelDB under the state directory keeps the streams across restarts (in memory
    # without TUBES_PERSIST).
    local path=""
    (( persist )) && { mkdir -p "$state/kinesalite"; path="path: '$state/kinesalite', "; }
    spawn kinesis node -e "require('$root/tools/node_modules/kinesalite')({${path}shardLimit: 100,
      createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0}).listen($kinesis_port, '127.0.0.1')" \
      >>"$state/kinesis.log" 2>&1
    wait_http kinesis "$AWS_ENDPOINT_URL_KINESIS" "${pid_of[kinesis]}"
    return
  fi
  # kinesis-local binds every interface: scripts/loopback.cjs keeps it on 127.0.0.1. It persists its streams.
  KINESIS_MOCK_CERT_PATH="$root/tools/node_modules/kinesis-local/server.json" \
  KINESIS_MOCK_PLAIN_PORT="$kinesis_port" KINESIS_MOCK_TLS_PORT="$((kinesis_port - 1))" \
  CREATE_STREAM_DURATION=0ms LOG_LEVEL=WARN SHOULD_PERSIST_DATA=$( ((persist)) && echo true || echo false) PERSIST_PATH="$state/kinesis" \
    spawn kinesis node -r "$root/scripts/loopback.cjs" tools/node_modules/kinesis-local/main.js >>"$state/kinesis.log" 2>&1
  wait_http kinesis "$AWS_ENDPOINT_URL_KINESIS" "${pid_of[kinesis]}"
}
start_moto() {
  # moto with DynamoDB requests one at a time, so conditional writes are atomic as in DynamoDB (see the script).
  TUBES_MOTO_STATE=$( ((persist)) && echo "$state/moto.state") \
    spawn moto .venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$moto_port" >>"$state/moto.log" 2>&1
  wait_http moto "$AWS_ENDPOINT_URL_SQS" "${pid_of[moto]}"
}
start_moto2() { # the second moto (TUBES_MOTO_DYNAMODB_PORT): DynamoDB only
  TUBES_MOTO_STATE=$( ((persist)) && echo "$state/moto2.state") \
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
# The functions: cargo lambda watch serves only the Lambda APIs (invoke and runtime) and this script runs
# INSTANCES instances of each function's built binary itself, supervised one by one: a killed instance is replaced
# alone, in milliseconds (cargo lambda watch would leave it dead). Live reload (unless TUBES_NO_RELOAD=1: tests
# and the soak want the binaries they started with) is this script's too: a saved source file under functions/ or
# shared/ (or a Cargo.toml) starts `cargo build`, and only the functions whose binaries changed get new instances
# (cargo lambda watch's own reload restarts every function, each a `cargo run`).
watch_mode=(--ignore-changes --only-lambda-apis)
reload=1
[[ "${TUBES_NO_RELOAD:-}" != 1 ]] || reload=0
# Logs: one file per function (JSON lines, each instance appending), kept across restarts, rotated over 10 MB
# when opened.
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
  # The instances write their own files; cargo lambda watch only serves the APIs.
  rotate "$logs/watch.log"
  spawn watch cargo lambda watch "${watch_mode[@]}" "${build_flags[@]}" --invoke-address 127.0.0.1 \
    --invoke-port "$http_port" --env-file "$state/functions.env" "${env_args[@]}" >>"$logs/watch.log" 2>&1
  for _ in $(seq 1 600); do
    (echo >"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null && break
    kill -0 "${pid_of[watch]}" 2>/dev/null || { echo "dev: cargo lambda watch exited; see $logs/watch.log" >&2; return 1; }
    sleep 0.1
  done
  (( ${#instance_pid[@]} )) || start_instances
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
# Live reload: the sources are looked at twice a second (`find -newer` over a few hundred files); a change builds
# the workspace, and each function whose binary the build rewrote gets new instances (started before the old are
# stopped; an invocation an old one was handling fails, and the mapping emulator retries it). A failed build
# leaves the running code as it was.
reload_stamp="$state/.reload-stamp"
# The workspace's crates, as folders relative to the root (a function's own, the shared ones, …).
mapfile -t watched < <(cargo metadata --no-deps --format-version 1 --offline | .venv/bin/python -c 'import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    print(os.path.relpath(os.path.dirname(p["manifest_path"])))')
binary_times() { local b; for b in "${function_binaries[@]}"; do stat -c "$b=%Y.%s" "$bin/$b" 2>/dev/null || true; done; }
# The build runs in the background, so supervision goes on meanwhile (an instance that ends during a long build is
# replaced at once); the instances are swapped when it has finished.
build_pid="" reload_before="" esm_before=""
reload_if_changed() {
  local changed after b i status=0
  if [[ -n $build_pid ]]; then
    kill -0 "$build_pid" 2>/dev/null && return 0
    wait "$build_pid" || status=$?
    build_pid=""
    if (( status != 0 )); then
      say "reload: the build failed (above); the functions keep running the code they had"
      return 0
    fi
    after=$(binary_times)
    local reloaded=()
    functions_env
    for b in "${function_binaries[@]}"; do
      [[ $(grep "^$b=" <<<"$reload_before") != $(grep "^$b=" <<<"$after") ]] || continue
      reloaded+=("$b")
      for i in $(seq 1 "$instances"); do
        local old=${instance_pid["$b#$i"]}
        start_instance "$b" "$i"
        kill -TERM -- "-$old" 2>/dev/null || true
      done
      echo "$b" >>"$state/ended-instances"
    done
    if (( ${#reloaded[@]} )); then say "reload: new instances of ${reloaded[*]}"; else say "reload: no function changed"; fi
    # The mapping emulator's own code: restarted on its checkpoints (saved on SIGTERM; a batch in flight is
    # delivered again, as after any restart).
    if [[ $esm_before != $(stat -c %Y.%s "$bin/tubes-local" 2>/dev/null) ]]; then
      say "reload: tubes-local changed; restarting the mapping emulator"
      stop_group "${pid_of[esm]}"
      start_esm
    fi
    return 0
  fi
  changed=$(find "${watched[@]}" Cargo.toml Cargo.lock -newer "$reload_stamp" -type f \
    \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -print -quit 2>/dev/null)
  [[ -n $changed ]] || return 0
  touch "$reload_stamp" # before building: a save during the build triggers another
  say "reload: $changed changed; building"
  reload_before=$(binary_times)
  esm_before=$(stat -c %Y.%s "$bin/tubes-local" 2>/dev/null)
  cargo build --workspace --bins --quiet "${build_flags[@]}" &
  build_pid=$!
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
  [[ -z "${pid_of[$name]:-}" ]] || stop_group "${pid_of[$name]}"
  case $name in
    kinesis) start_kinesis ;;
    # A new moto reads the state file (TUBES_PERSIST), up to its last snapshot; provisioning again creates
    # whatever is missing (all of it without TUBES_PERSIST: the idempotency records and dead letters of the
    # old one are gone then, as they would be if the table or queue were recreated).
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
  (( ! reload )) || reload_if_changed
  # The process that started this stack is gone (a test or soak killed without cleaning up): stop with it.
  if [[ -n "${TUBES_PARENT_PID:-}" ]] && ! kill -0 "$TUBES_PARENT_PID" 2>/dev/null; then
    echo "dev: the process that started the stack ($TUBES_PARENT_PID) is gone; stopping" >&2
    exit 0
  fi
  sleep 0.5
done

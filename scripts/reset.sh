#!/usr/bin/env bash
# `make reset`: the local stack's state (the emulators' streams, tables, queues, buckets and secrets, the mapping
# emulator's checkpoints, the demo credentials, the logs: all of TUBES_STATE_DIR, default .local/dev) removed, and
# nothing else (the build and the installed tools stay). Refuses while a stack runs on that state.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${TUBES_STATE_DIR:-.local/dev}
if [[ ! -d $state ]]; then
  echo "reset: no state at $state; nothing to do"
  exit 0
fi
if [[ -f $state/dev.pid ]] && kill -0 "$(cat "$state/dev.pid")" 2>/dev/null; then
  echo "reset: a stack (pid $(cat "$state/dev.pid")) runs on $state: stop it first (Ctrl-C where make dev runs)" >&2
  exit 1
fi
size=$(du -sh "$state" | cut -f1)
rm -rf "$state"
echo "reset: removed $state ($size); the next make dev starts empty, with new demo credentials"

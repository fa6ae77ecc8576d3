#!/usr/bin/env bash
# Installs every tool the local stack and the tests need, pinned, into the project:
# Python tools into .venv, Node tools into tools/node_modules, and the arm64 Rust target.
# Fast when already installed: each step is skipped when its stamp matches its pin file.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

stamp_ok() { [ -f "$2" ] && cmp -s "$1" "$2"; }

# The stamp is both pin files: a change to either reinstalls. A temporary file of this process's own: the tests
# start several local stacks at once, each running this script (a shared one was removed under another's feet).
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT
cat tools/requirements.txt tools/constraints.txt > "$pins"
if ! stamp_ok "$pins" .venv/.tubes-stamp; then
  echo "bootstrap: python tools -> .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt -c tools/constraints.txt
  cp "$pins" .venv/.tubes-stamp
fi

if ! stamp_ok tools/package-lock.json tools/node_modules/.tubes-stamp; then
  echo "bootstrap: node tools -> tools/node_modules" >&2
  (cd tools && npm ci --no-audit --no-fund --silent)
  cp tools/package-lock.json tools/node_modules/.tubes-stamp
fi

if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "bootstrap: rustup target aarch64-unknown-linux-gnu" >&2
  rustup target add aarch64-unknown-linux-gnu
fi

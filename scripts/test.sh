#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then checks formatting, lints
# and runs every test of the workspace (unit, property, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase's start, in seconds since the suite began: where CI's time goes.
started=$SECONDS
phase() { echo "== $* (at $((SECONDS - started)) s)"; }
# A from-scratch build gains nothing from incremental state, which only costs disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Switches that make checks pass by rewriting their references, or that turn the suite's own
# brokers into an external one where pause and freeze do nothing: never in CI.
if [ -n "${CI:-}" ]; then
  for v in MFAGAP_UPDATE_GOLDEN MFAGAP_README_BLESS KAFKA_BOOTSTRAP; do
    if [ -n "${!v+set}" ]; then
      echo "scripts/test.sh: $v is set; under CI the suite refuses it (it would make checks pass without checking)" >&2
      exit 2
    fi
  done
fi

# What building needs first; the test tools (brokers, readers, emulators, validators: mostly
# downloads) install in the background while the code builds, and are waited for before the
# tests run.
phase "setup"
scripts/setup.sh
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
setup_log=$(mktemp)
scripts/setup.sh --test >"$setup_log" 2>&1 &
setup_pid=$!
trap 'kill "$setup_pid" 2>/dev/null || true; rm -f "$setup_log"' EXIT

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "cargo check of the fuzz target"
# Its own workspace (a nightly-instrumented build fuzzes it); checking it keeps it building.
cargo check --manifest-path fuzz/Cargo.toml --locked --target-dir target/fuzz-check
phase "cargo test (build)"
cargo test --workspace --locked --no-run
phase "the test tools"
if ! wait "$setup_pid"; then
  cat "$setup_log" >&2
  echo "scripts/test.sh: installing the test tools failed (above)" >&2
  exit 1
fi
cat "$setup_log" >&2
phase "cargo nextest run"
# Two tests per core: most of them wait on brokers, emulators and the processes they kill, and
# with one per core the machine was half idle (README, "The two commands").
cargo nextest run --workspace --locked --test-threads "$(( $(nproc) * 2 ))"
phase "cargo test --doc"
cargo test --workspace --locked --doc
phase "done"

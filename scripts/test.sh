#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then checks formatting, lints
# and runs every test of the workspace (unit, property, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
# A from-scratch build gains nothing from incremental state, which only costs disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

scripts/setup.sh
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked

#!/usr/bin/env bash
# Installs what building and testing mfagap needs on a fresh machine. Idempotent: every step
# checks first and does nothing when its part is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# The Rust toolchain, with the components the checks use.
if ! command -v cargo >/dev/null 2>&1; then
  say "installing Rust with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    say "adding the $component component"
    rustup component add "$component"
  fi
done

# C toolchain pieces that -sys crates build with.
missing=()
for tool in cc make pkg-config cmake; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing build tools: ${missing[*]}"
  pkgs=(build-essential pkg-config cmake)
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${pkgs[@]}"
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq "${pkgs[@]}"
  fi
fi

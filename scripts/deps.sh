#!/usr/bin/env bash
# Installs what libwhisper needs on Debian 12 (as root): the build and its
# libraries, clang for the fuzzers (and clang-19, which reads API notes, for
# the Swift module's check, tests/bindings), Node.js for the libsignal interop peer,
# openssl (s_client) for whisperd's TLS test, abigail-tools (abidw, abidiff)
# for the ABI check (scripts/abi-check.sh), a JDK (17) and the Kotlin
# compiler (npm, pinned in bindings/kotlin/package-lock.json) for the Kotlin
# binding's tests.
# whisperd runs libwebsockets on libuv: libuv1-dev to build, and lws's
# libuv event loop plugin (libwebsockets-evlib-uv) to run.
# Installs only what is missing, so it is quick on a prepared machine.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang clang-19 libsodium-dev libprotobuf-c-dev
      protobuf-c-compiler libsqlite3-dev libwebsockets-dev libwebsockets-evlib-uv libuv1-dev
      libssl-dev libqrencode-dev openssl libpq-dev postgresql abigail-tools
      openjdk-17-jdk-headless)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  # PostgreSQL's server is for the tests, which start private clusters
  # (tests/tools/pg_cluster.sh): no system cluster, no service.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Kotlin compiler for bindings/kotlin (run_tests.sh): npm ci when its
# node_modules is missing or older than the lock file.
kt="$(cd "$(dirname "$0")/.." && pwd)/bindings/kotlin"
if [ -f "$kt/package-lock.json" ] &&
   { [ ! -f "$kt/node_modules/.package-lock.json" ] ||
     [ "$kt/package-lock.json" -nt "$kt/node_modules/.package-lock.json" ]; }; then
  echo "deps: npm ci in bindings/kotlin (kotlin-compiler)"
  (cd "$kt" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

#!/usr/bin/env bash
# Regenerates the ABI baselines abi/libwhisper.abi and
# abi/libwhisper-server.abi from a build with debug information (default
# build/release, a RelWithDebInfo build), for the ABI check
# (scripts/abi-check.sh, ctest -L abi). Run it after a reviewed change of
# the public ABI, then commit abi/ with that change (docs/api.md, "ABI").
# usage: scripts/abi-baseline.sh [BUILD_DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build/release}
cmake --build "$build" --target whisper whisper-server -j2 >/dev/null
client=$(readlink -f "$build/libwhisper.so")   # (the current version: an older one may linger)
server=$(readlink -f "$build/libwhisper-server.so")
rc=0
"$src/scripts/abi-check.sh" --update "$src" "$client" "$server" || rc=$?
if [ $rc = 77 ]; then echo "abi-baseline: cannot dump the ABI (see above)"; fi
exit $rc

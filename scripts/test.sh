#!/usr/bin/env bash
# The whole test suite: install the dependencies and the libsignal peer,
# then build and run every test twice (a normal build, then one with
# AddressSanitizer + UndefinedBehaviorSanitizer), and run each fuzz target
# for a short, bounded time. FUZZ_SECONDS sets that time (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
bash scripts/deps.sh
(cd tests/interop/libsignal-peer && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

echo "== release build"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j"$jobs" >/dev/null
ctest --test-dir build/release --output-on-failure -j"$jobs"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DWHISPER_SANITIZE=ON >/dev/null
cmake --build build/asan -j"$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j"$jobs"

if [ -d fuzz ]; then
  echo "== fuzz targets (bounded)"
  cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWHISPER_FUZZ=ON -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build build/fuzz -j"$jobs" >/dev/null
  bash fuzz/run.sh build/fuzz "${FUZZ_SECONDS:-15}"
fi
echo "== all tests passed"

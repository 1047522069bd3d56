#!/usr/bin/env bash
# The main job: install the dependencies, build, and run the demo (two local
# devices set up a Signal session and talk).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j"$(nproc)" --target whisper-demo >/dev/null
./build/release/examples/demo/whisper-demo

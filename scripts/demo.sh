#!/usr/bin/env bash
# The main job: install the dependencies, build, and run the demos:
#  1. whisper-demo: two local devices set up a Signal session and talk
#     (the library alone, no network);
#  2. examples/demo/sync-demo.js: whisperd on loopback and scripted
#     whisper-chat clients: a conversation with every tick, a reply, a
#     reaction, an edit and a delete for everyone (each checked: pass or
#     FAIL), an offline catch-up, a group a member leaves, and a photo
#     whose upload is cut (SIGKILL) and resumed, downloaded and checked.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j"$(nproc)" --target whisper-demo whisperd whisper-chat >/dev/null
./build/release/examples/demo/whisper-demo
echo
node examples/demo/sync-demo.js --whisperd build/release/examples/whisperd/whisperd \
  --chat build/release/examples/chat/whisper-chat

#!/usr/bin/env bash
# The ABI check (docs/api.md, "ABI"): the exported ABI of the two shared
# libraries, as libabigail's abidw reads it from their DWARF and the public
# headers (include/whisper), must equal the committed baselines
# abi/libwhisper.abi and abi/libwhisper-server.abi. abidiff compares them.
#
# Policy: every difference fails, compatible or not. An incompatible change
# (a removed or changed function, a struct or enum changed under an
# existing symbol) breaks the ABI: it needs the SONAME bump of docs/api.md.
# A compatible one (a function added, a struct grown at its end behind its
# version field) must be recorded: regenerate the baselines with
# scripts/abi-baseline.sh and commit them with the change, so each
# change of the ABI is a reviewed line of the history.
#
# usage: abi-check.sh SOURCE_DIR LIBWHISPER.so LIBWHISPER-SERVER.so
#        abi-check.sh --update SOURCE_DIR LIBWHISPER.so LIBWHISPER-SERVER.so
#          (writes the baselines instead: scripts/abi-baseline.sh)
# Exit 0: equal; 1: changed (abidiff's report printed); 77: cannot check
# (no abidw, or libraries without debug information: a Release build).
set -euo pipefail
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
[ $# -eq 3 ] || { echo "usage: $0 [--update] SOURCE_DIR LIBWHISPER.so LIBWHISPER-SERVER.so" >&2; exit 2; }
src=$1 client=$2 server=$3

if ! command -v abidw >/dev/null || ! command -v abidiff >/dev/null; then
  echo "abi-check: skipped: abidw/abidiff not found (apt-get install abigail-tools; scripts/deps.sh)"
  exit 77
fi
for so in "$client" "$server"; do
  [ -f "$so" ] || { echo "abi-check: $so: no such library (build it first)"; exit 1; }
  # (captured first: grep -q in a pipe could cut readelf short, and
  # pipefail would count its SIGPIPE)
  sections=$(readelf -S "$so" 2>/dev/null || true)
  if [[ $sections != *.debug_info* ]]; then
    echo "abi-check: skipped: $so has no debug information (build RelWithDebInfo or Debug)"
    exit 77
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The ABI of one library: only what the public headers declare (types
# defined elsewhere are private and dropped), without paths, line numbers
# or the build's directories, so that the baseline depends on the ABI alone.
dump() {
  abidw --headers-dir "$src/include/whisper" --drop-private-types --drop-undefined-syms \
    --no-corpus-path --no-comp-dir-path --no-show-locs --type-id-style hash \
    --out-file "$2" "$1"
}

fail=0
for pair in "libwhisper:$client" "libwhisper-server:$server"; do
  name=${pair%%:*} so=${pair#*:}
  base=$src/abi/$name.abi
  dump "$so" "$work/$name.abi"
  if [ $update = 1 ]; then
    mkdir -p "$src/abi"
    cp "$work/$name.abi" "$base"
    echo "abi-check: wrote $base ($(grep -c '<elf-symbol ' "$base") symbols)"
    continue
  fi
  if [ ! -f "$base" ]; then
    echo "abi-check: no baseline $base: make it with scripts/abi-baseline.sh"
    fail=1
    continue
  fi
  rc=0
  abidiff --no-show-locs "$base" "$work/$name.abi" >"$work/$name.diff" 2>&1 || rc=$?
  if [ $rc = 0 ]; then
    echo "abi-check: $name: the ABI equals the baseline ($(grep -c '<elf-symbol ' "$base") symbols)"
    continue
  fi
  fail=1
  if (( rc & 1 )); then
    echo "abi-check: $name: abidiff failed (exit $rc):"
  elif (( rc & 8 )) || grep -q 'offset changed from' "$work/$name.diff"; then
    # abidiff's own verdict (a removed function), or existing struct
    # members moved (abidiff calls that a change, but callers built on the
    # baseline read the wrong bytes).
    echo "abi-check: $name: INCOMPATIBLE ABI change against abi/$name.abi: this breaks" \
      "programs built on the baseline (docs/api.md: a SONAME bump, or undo the change):"
  else
    echo "abi-check: $name: the ABI changed against abi/$name.abi. If the change is" \
      "compatible (docs/api.md), record it: scripts/abi-baseline.sh, then commit abi/:"
  fi
  sed 's/^/  /' "$work/$name.diff"
done
exit $fail

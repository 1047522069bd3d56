#!/usr/bin/env bash
# Runs every fuzz target for a fixed time on a copy of its seed corpus.
#
#   fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# BUILD_DIR is a build configured with -DWHISPER_FUZZ=ON (the binaries are
# in BUILD_DIR/fuzz/). Each target runs for SECONDS on a temporary copy of
# fuzz/corpus/TARGET (the committed corpus never grows), with
# -timeout=10 -rss_limit_mb=2048. Prints "fuzz TARGET: ok (N runs)" per
# target, or the failure with the crashing input in hex; exits non-zero if
# any target failed (crash, sanitizer report, leak, timeout, out of memory).
#
# Kept in BUILD_DIR/fuzz-out/: TARGET.log (libFuzzer's output) and, on a
# failure, the crashing input (crash-*, leak-*, timeout-*, oom-*).
# FUZZ_STATS=1 also prints each target's final coverage and speed.
set -u

usage() {
  echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
build=$1
secs=$2
shift 2
case $secs in '' | *[!0-9]*) usage ;; esac

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=(fuzz_signal_message fuzz_prekey_message fuzz_bundle fuzz_session_record
    fuzz_skdm fuzz_sender_key_message fuzz_sender_key_record fuzz_history_record
    fuzz_fingerprint fuzz_small_records fuzz_server fuzz_client fuzz_sync_frame fuzz_e2e
    fuzz_search fuzz_content_records fuzz_attachment fuzz_pointer fuzz_relay)
fi

out="$build/fuzz-out"
mkdir -p "$out" || exit 2
# fuzz_media (the engine's attachment jobs) runs with the others
[ $# -gt 0 ] || targets+=(fuzz_media)
work=$(mktemp -d "${TMPDIR:-/tmp}/whisper-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# UBSan reports are fatal (the build's -fsanitize=undefined recovers by
# default); leaks are reported by libFuzzer's LeakSanitizer.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

failed=0
for t in "${targets[@]}"; do
  bin="$build/fuzz/$t"
  log="$out/$t.log"
  if [ ! -x "$bin" ]; then
    echo "fuzz $t: FAILED (no binary $bin: build with -DWHISPER_FUZZ=ON)"
    failed=1
    continue
  fi
  corpus="$work/$t"
  mkdir -p "$corpus"
  if [ -d "$here/corpus/$t" ]; then
    cp "$here/corpus/$t"/* "$corpus"/ 2>/dev/null
  else
    echo "fuzz $t: warning: no seed corpus in $here/corpus/$t" >&2
  fi
  rm -f "$out/$t"-crash-* "$out/$t"-leak-* "$out/$t"-timeout-* "$out/$t"-oom-* \
    "$out/$t"-slow-unit-*
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/$t-" "$corpus" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  if [ $rc -eq 0 ] && [ -n "$runs" ]; then
    echo "fuzz $t: ok ($runs runs)"
    if [ -n "${FUZZ_STATS:-}" ]; then
      stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
      echo "  ${stats}"
    fi
    continue
  fi
  failed=1
  echo "fuzz $t: FAILED (exit $rc)"
  # the report: from the first sanitizer/assertion line, bounded
  awk '/FUZZ ASSERTION FAILED|ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|ALARM: working on|==[0-9]+== ERROR/ {p=1} p' "$log" |
    head -n 60 | sed 's/^/  /'
  for a in "$out/$t"-crash-* "$out/$t"-leak-* "$out/$t"-timeout-* "$out/$t"-oom-*; do
    [ -f "$a" ] || continue
    echo "  input: $a ($(wc -c <"$a") bytes)"
    echo "  hex: $(od -An -v -tx1 "$a" | tr -d ' \n')"
    echo "  reproduce: $bin $a"
  done
  echo "  full log: $log"
done
exit $failed

#!/usr/bin/env bash
# Builds (when stale) and runs the Kotlin binding's tests on the JVM:
#   run_tests.sh --jni PATH/libwhisper_jni.so --out DIR [--whisperd PATH] [--only TEST]
# kotlinc is the npm package kotlin-compiler pinned in package-lock.json
# (`npm ci` in bindings/kotlin; scripts/test.sh does it). Exits 77 (ctest's
# skip) only when java or that package is missing; any other problem fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jni="" out="" whisperd="" only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --jni) jni="$2"; shift 2 ;;
    --jni-dir) shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --whisperd) whisperd="$2"; shift 2 ;;
    --only) only=(--only "$2"); shift 2 ;;
    *) echo "run_tests.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "run_tests.sh: --out DIR is required" >&2; exit 2; }

if [ -z "${JAVA_HOME:-}" ] && [ -d /usr/lib/jvm/java-17-openjdk-amd64 ]; then
  export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
fi
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if ! command -v "$java" >/dev/null 2>&1; then
  echo "SKIP: no java (apt-get install openjdk-17-jdk-headless)"
  exit 77
fi
kc="$here/node_modules/kotlin-compiler"
if [ ! -x "$kc/bin/kotlinc" ]; then
  echo "SKIP: no kotlinc: run npm ci in bindings/kotlin (scripts/deps.sh does)"
  exit 77
fi
if [ -z "$jni" ] || [ ! -f "$jni" ]; then
  echo "FAIL: java is here but the JNI shim was not built (no JNI headers found by CMake?)" >&2
  exit 1
fi

# Compile the API and the tests together when a source is newer than the jar.
jni="$(realpath "$jni")"
# The shim exports what the JVM looks up and nothing else.
if command -v nm >/dev/null 2>&1; then
  extra="$(nm -D --defined-only "$jni" | awk '{print $3}' | grep -v -E '^(Java_org_libwhisper_|JNI_OnLoad$)' || true)"
  if [ -n "$extra" ]; then
    echo "FAIL: libwhisper_jni exports more than Java_* and JNI_OnLoad: $extra"
    exit 1
  fi
fi
# ErrorCode (Whisper.kt) spells every WHISPER_E* code of core.h with its number.
here="$(cd "$(dirname "$0")" && pwd)"
want="$(grep -oE 'WHISPER_E[A-Z]+ = -[0-9]+' "$here/../../include/whisper/core.h" | sed 's/^WHISPER_//' | sort)"
have="$(grep -oE 'const val E[A-Z]+ = -[0-9]+' "$here/src/main/kotlin/org/libwhisper/Whisper.kt" | sed 's/^const val //' | sort)"
if [ -z "$want" ] || [ "$want" != "$have" ]; then
  echo "FAIL: ErrorCode in Whisper.kt differs from core.h's codes:"
  diff <(echo "$want") <(echo "$have") || true
  exit 1
fi
# Sizes: every size function of sizes.h and core.h is in the shim's table
# (jni/sizes.c's WJ_SIZES, once), and each entry has its val in Sizes.kt.
inc="$here/../../include/whisper"
want="$( { grep -ohE 'whisper_[a-z0-9_]+\(void\)' "$inc/sizes.h"
           grep -ohE 'whisper_[a-z0-9_]+_(len|max|max_size|digits)\(void\)' "$inc/core.h"; } |
        sed -E 's/^whisper_//; s/\(void\)$//' | sort)"
table="$(grep -oE '^  X\([a-z0-9_]+\)' "$here/jni/sizes.c" | sed -E 's/^  X\(//; s/\)$//' | sort)"
kt="$(grep -oE '(int|long)\("[a-z0-9_]+"\)' "$here/src/main/kotlin/org/libwhisper/Sizes.kt" |
      sed -E 's/^[a-z]+\("//; s/"\)$//' | sort)"
if [ "$(echo "$want" | wc -l)" -lt 40 ] || [ "$want" != "$(echo "$want" | sort -u)" ]; then
  echo "FAIL: could not read the size functions of sizes.h and core.h"
  exit 1
fi
if [ "$want" != "$table" ]; then
  echo "FAIL: jni/sizes.c's WJ_SIZES differs from the size functions of sizes.h and core.h (< headers, > table):"
  diff <(echo "$want") <(echo "$table") || true; echo
  exit 1
fi
if [ "$want" != "$kt" ]; then
  echo "FAIL: Sizes.kt's vals differ from the size functions of sizes.h and core.h (< headers, > Sizes.kt):"
  diff <(echo "$want") <(echo "$kt") || true; echo
  exit 1
fi
mkdir -p "$out"
jar="$out/whisper-kotlin-tests.jar"
if [ ! -f "$jar" ] || [ -n "$(find "$here/src" -name '*.kt' -newer "$jar" | head -1)" ]; then
  echo "kotlinc: compiling $(find "$here/src" -name '*.kt' | wc -l) files"
  t0=$(date +%s)
  "$kc/bin/kotlinc" -jvm-target 17 -cp "$kc/lib/kotlin-test.jar" \
    "$here/src/main/kotlin" "$here/src/test/kotlin" -d "$jar.tmp.jar"
  mv "$jar.tmp.jar" "$jar"
  echo "kotlinc: $(( $(date +%s) - t0 )) s"
fi

args=()
[ -n "$whisperd" ] && args+=(--whisperd "$whisperd")
# A fixed, pre-touched Java heap: the leak test reads VmRSS, which then
# does not move with the heap's growth. -Xcheck:jni checks every JNI call
# the shim makes; a warning of it fails the test.
log="$out/last-run.log"
set +e
"$java" -Xms96m -Xmx96m -XX:+AlwaysPreTouch -Xcheck:jni -Dwhisper.jni.path="$jni" \
  -Dwhisper.include.dir="$(realpath "$inc")" \
  -cp "$jar:$kc/lib/kotlin-stdlib.jar:$kc/lib/kotlin-test.jar" \
  org.libwhisper.test.RunnerKt "${args[@]}" "${only[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if grep -q "WARNING in native method" "$log"; then
  echo "FAIL: -Xcheck:jni found a misuse of JNI (above)"
  exit 1
fi
exit "$rc"

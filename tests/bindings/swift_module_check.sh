#!/usr/bin/env bash
# Checks what Swift's importer reads of libwhisper, with clang (there is no
# Swift compiler here): the module CWhisper (bindings/swift), the public
# headers' nullability and the API notes.
#
#   swift_module_check.sh SOURCE_DIR nullability
#     With any clang that has modules (14 and up):
#     1. An Objective-C file that does `@import CWhisper;` and calls the API
#        compiles with -Werror -Wnullability-completeness -Wnullability
#        -Wnullable-to-nonnull-conversion (all warnings of the headers are
#        errors: the module map is not [system]).
#     2. Every pointer in every declaration of the module (functions, their
#        parameters, struct fields, callback types), as clang's AST prints
#        them, is _Nonnull or _Nullable; so is every pointer of server.h and
#        pgstore.h (the server library's headers, not in the module).
#     3. The annotations mean something: passing a _Nullable pointer where
#        the API wants one that is not NULL fails the compile, and
#        whisper_*_free() takes NULL.
#     4. A broken copy of the headers fails the check: an out-parameter
#        without its annotations, a header without its assume-nonnull
#        region, a new declaration outside one.
#   swift_module_check.sh SOURCE_DIR apinotes
#     With a clang that reads API notes (-fapinotes-modules: clang 18 and
#     up; Debian 12's clang-19):
#     5. The same file compiles with the API notes, -Werror (a Swift name
#        whose arity is not its function's is an error there).
#     6. Every entry of CWhisper.apinotes reached its declaration: each
#        SwiftName shows as a SwiftNameAttr in the AST, each enum has its
#        extensibility (a name that matches no declaration is ignored by
#        clang, so this is how a stale entry is caught).
#     7. A broken copy of the API notes fails: a YAML error, a Swift name
#        of the wrong arity, an entry for a name that does not exist.
# Exits 77 (ctest's SKIP_RETURN_CODE) when no suitable clang is found.
set -euo pipefail
src=${1:?source dir}
mode=${2:?nullability or apinotes}
skip=77

find_clang() { # $1: 1 if API notes are needed
  local c
  for c in ${CLANG:-} clang clang-21 clang-20 clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
    command -v "$c" >/dev/null 2>&1 || continue
    if [ "$1" = 1 ]; then
      echo 'int x;' | "$c" -x c -fsyntax-only -fapinotes-modules - >/dev/null 2>&1 || continue
    fi
    echo "$c"
    return 0
  done
  return 1
}

case $mode in
  nullability) need_notes=0 ;;
  apinotes) need_notes=1 ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
if ! CC=$(find_clang $need_notes); then
  if [ $need_notes = 1 ]; then
    echo "SKIP: no clang with API notes (-fapinotes-modules; clang >= 18, e.g. Debian's clang-19)"
  else
    echo "SKIP: no clang"
  fi
  exit $skip
fi
echo "using $CC ($("$CC" --version | head -1))"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A fresh copy of the headers and of the module (a test breaks copies).
fresh() { # $1: directory to make
  rm -rf "$1"
  mkdir -p "$1/include" "$1/mod"
  cp -r "$src/include/whisper" "$1/include/"
  cp -r "$src/bindings/swift/Sources/CWhisper" "$1/mod/"
}

flags=(-fsyntax-only -fmodules -fimplicit-module-maps -Werror -Wall -Wextra
       -Wnullability-completeness -Wnullability -Wnullable-to-nonnull-conversion)
if [ $need_notes = 1 ]; then flags+=(-fapinotes-modules); fi

compile() { # $1: tree, $2: file; a module cache of its own each time
  rm -rf "$1/cache"
  "$CC" "${flags[@]}" -fmodules-cache-path="$1/cache" -I"$1/include" -I"$1/mod" "$2"
}

# The probe: uses the API as an app does, with the nullability Swift sees.
cat >"$tmp/probe.m" <<'EOF'
@import CWhisper;

/* Clang, like Swift, does not follow NULL checks: what comes back through a
 * _Nullable out-parameter is unwrapped once, as Swift's `guard let` does. */
#define UNWRAP(T, p) ((T *_Nonnull)(p))

static int probe(void) {
  whisper_store *_Nullable maybe_store = NULL;
  whisper_ctx *_Nullable maybe_ctx = NULL;
  whisper_buf *_Nullable out = NULL;
  int rc = whisper_store_memory_new(&maybe_store);
  if (rc != WHISPER_OK || maybe_store == NULL) return rc;
  whisper_store *_Nonnull store = UNWRAP(whisper_store, maybe_store);
  rc = whisper_ctx_new(&maybe_ctx, store);
  if (rc == WHISPER_OK && maybe_ctx != NULL) {
    whisper_ctx *_Nonnull ctx = UNWRAP(whisper_ctx, maybe_ctx);
    const char *_Nonnull why = whisper_ctx_last_error(ctx);
    const char *_Nonnull what = whisper_strerror(rc);
    uint8_t sig[WHISPER_SIGNATURE_LEN];
    uint8_t priv[WHISPER_PRIVATE_KEY_LEN] = {1};
    rc = whisper_sign(ctx, priv, NULL, 0, sig); /* an empty message may be NULL */
    rc = whisper_sender_key_encrypt(ctx, sig, NULL, 0, &out);
    (void)why;
    (void)what;
  }
  whisper_buf_free(out); /* the _free functions take NULL */
  whisper_ctx_free(maybe_ctx);
  whisper_store_free(maybe_store);
  whisper_client_config_t cfg = WHISPER_CLIENT_CONFIG_INIT;
  whisper_client_event_t ev = {0};
  return rc + (int)cfg.version + (ev.conversation == NULL);
}

int main(void) { return probe() < 0; }
EOF

# What must not compile: a _Nullable pointer where the API wants one.
cat >"$tmp/misuse.m" <<'EOF'
@import CWhisper;
const char *misuse(whisper_ctx *_Nullable ctx);
const char *misuse(whisper_ctx *_Nullable ctx) { return whisper_ctx_last_error(ctx); }
EOF

# Every pointer in the declarations of the headers is annotated, as the AST
# prints them. (Typedefs of function pointers are annotated where they are
# used, so their own `(*)` is left out.)
ast_check() { # $1: tree
  # The module's headers, and the server library's (not in the module, as
  # annotated).
  printf '#include <whisper/%s.h>\n' whisper server pgstore >"$1/all.c"
  "$CC" -fsyntax-only -I"$1/include" -Xclang -ast-dump -Xclang -ast-dump-filter -Xclang whisper_ \
    "$1/all.c" >"$1/ast.txt" 2>"$1/ast.err" || { cat "$1/ast.err" >&2; return 1; }
  local n
  n=$(grep -cE '(FunctionDecl|ParmVarDecl|FieldDecl) ' "$1/ast.txt" || true)
  [ "$n" -gt 100 ] || { echo "only $n declarations dumped" >&2; return 1; }
  local bad
  bad=$(sed 's/\x1b\[[0-9;]*m//g' "$1/ast.txt" |
        grep -E '(FunctionDecl|ParmVarDecl|FieldDecl|TypedefDecl) ' |
        sed -E "s/^[^']*'([^']*)'.*/\\1/" |
        sed -E 's/\* *(const )? *_(Nonnull|Nullable)//g; s/\(\*\)//g' |
        grep -F '*' || true)
  if [ -n "$bad" ]; then
    echo "pointers without nullability (types as clang prints them, annotated ones cut):" >&2
    echo "$bad" | head -5 >&2
    return 1
  fi
}

# API notes: each SwiftName reached a declaration (clang drops names it
# cannot match without a word), and each EnumExtensibility.
notes_check() { # $1: tree
  local notes="$1/mod/CWhisper/CWhisper.apinotes"
  printf '@import CWhisper;\n' >"$1/one.m"
  rm -rf "$1/cache"
  "$CC" -fsyntax-only -fmodules -fimplicit-module-maps -fapinotes-modules \
    -fmodules-cache-path="$1/cache" -I"$1/include" -I"$1/mod" "$1/one.m" \
    -Xclang -ast-dump-all -Xclang -ast-dump-filter -Xclang hisper_ 2>"$1/notes.err" |
    sed 's/\x1b\[[0-9;]*m//g' >"$1/notes.txt" || { cat "$1/notes.err" >&2; return 1; }
  # Pairs "Name SwiftName" from the notes (an entry is `- Name:` then its keys).
  awk '/^- Name:/ {n=$3} /^  SwiftName:/ {s=$2; gsub(/^[\x27"]|[\x27"]$/, "", s); print n, s}' \
    "$notes" >"$1/pairs.txt"
  local total missing=0 name swift
  total=$(wc -l <"$1/pairs.txt")
  [ "$total" -gt 100 ] || { echo "only $total Swift names in $notes" >&2; return 1; }
  # "declaration SwiftName" for each attribute clang attached: an attribute
  # belongs to the declaration one level up the tree (2 columns left).
  awk '{
      match($0, /[A-Za-z]/); d = RSTART
      if ($0 ~ /(FunctionDecl|EnumConstantDecl|TypedefDecl) /) {
        line = $0; sub(/ \x27.*/, "", line); n = split(line, w, " "); decl[d] = w[n]
      } else if ($0 ~ /(RecordDecl|EnumDecl) /) {
        n = split($0, w, " "); decl[d] = w[n]
        if (match($0, /(struct|enum) [A-Za-z_0-9]+/)) { t = substr($0, RSTART, RLENGTH); sub(/^[a-z]+ /, "", t); decl[d] = t }
      } else if ($0 ~ /SwiftNameAttr /) {
        q = $0; sub(/^[^"]*"/, "", q); sub(/".*/, "", q); print decl[d - 2], q
      }
    }' "$1/notes.txt" | sort -u >"$1/applied.txt"
  while read -r name swift; do
    if ! grep -qxF -- "$name $swift" "$1/applied.txt"; then
      echo "API notes: $name -> $swift was not applied (no such declaration?)" >&2
      missing=$((missing + 1))
    fi
  done <"$1/pairs.txt"
  [ $missing = 0 ] || return 1
  local want got
  want=$(grep -c '^  EnumExtensibility:' "$notes" || true)
  got=$(grep -cE 'EnumExtensibilityAttr .*(Open|Closed)' "$1/notes.txt" || true)
  [ "$got" -ge "$want" ] || { echo "API notes: $want enum extensibilities, $got applied" >&2; return 1; }
  echo "API notes: $total Swift names and $want enum kinds applied"
  # Not an error (the C name is still usable from Swift), but worth a run of
  # bindings/swift/tools/gen_apinotes.py: functions the notes do not name.
  local unnamed
  unnamed=$(grep -E 'FunctionDecl ' "$1/notes.txt" | sed -E "s/ '.*//" | awk '{print $NF}' |
            grep '^whisper_' | sort -u | grep -vxF -f <(awk '{print $1}' "$1/pairs.txt") || true)
  [ -z "$unnamed" ] || echo "note: functions without a Swift name: $(echo $unnamed)"
}

expect_fail() { # $1: what, then a command
  local what=$1
  shift
  if "$@" >"$tmp/out.txt" 2>&1; then
    fail "the check passed on a broken copy: $what"
  fi
  echo "ok: fails on $what: $(grep -m1 -E 'error|API notes|nullability|only' "$tmp/out.txt" | cut -c1-150)"
}

good=$tmp/good
fresh "$good"
compile "$good" "$tmp/probe.m" || fail "the module does not compile cleanly"
echo "ok: @import CWhisper compiles with -Werror and the nullability warnings"

if [ $mode = nullability ]; then
  ast_check "$good" || fail "unannotated pointers in the public headers"
  echo "ok: every pointer in the module's declarations is _Nonnull or _Nullable"
  expect_fail "a _Nullable context passed to whisper_ctx_last_error()" compile "$good" "$tmp/misuse.m"

  b=$tmp/b1
  fresh "$b"
  sed -i 's/whisper_ctx \*WHISPER_NULLABLE \*WHISPER_NONNULL out/whisper_ctx **out/' \
    "$b/include/whisper/core.h"
  grep -q 'whisper_ctx \*\*out' "$b/include/whisper/core.h" || fail "break 1 did not apply"
  expect_fail "an out-parameter without annotations (compile)" compile "$b" "$tmp/probe.m"
  expect_fail "an out-parameter without annotations (AST)" ast_check "$b"

  b=$tmp/b2
  fresh "$b"
  sed -i '/^WHISPER_NONNULL_BEGIN$/d; /^WHISPER_NONNULL_END$/d' "$b/include/whisper/keys.h"
  expect_fail "keys.h without its assume-nonnull region (compile)" compile "$b" "$tmp/probe.m"
  expect_fail "keys.h without its assume-nonnull region (AST)" ast_check "$b"

  b=$tmp/b3
  fresh "$b"
  printf '%s\n' 'WHISPER_NONNULL_END' \
    'WHISPER_API int whisper_search_probe(whisper_ctx *ctx);' 'WHISPER_NONNULL_BEGIN' >"$b/new.h"
  sed -i "/^WHISPER_API int whisper_search_rebuild/r $b/new.h" "$b/include/whisper/search.h"
  grep -q whisper_search_probe "$b/include/whisper/search.h" || fail "break 3 did not apply"
  expect_fail "a declaration outside the assume-nonnull region (AST)" ast_check "$b"
else
  notes_check "$good" || fail "API notes not applied"

  b=$tmp/n1
  fresh "$b"
  sed -i '0,/^Functions:/s//Functions/' "$b/mod/CWhisper/CWhisper.apinotes"
  expect_fail "API notes with a YAML error" compile "$b" "$tmp/probe.m"

  b=$tmp/n2
  fresh "$b"
  sed -i "s/SwiftName: 'whisperVersion()'/SwiftName: 'whisperVersion(_:)'/" \
    "$b/mod/CWhisper/CWhisper.apinotes"
  grep -q "whisperVersion(_:)" "$b/mod/CWhisper/CWhisper.apinotes" || fail "break n2 did not apply"
  expect_fail "a Swift name of the wrong arity" compile "$b" "$tmp/probe.m"

  b=$tmp/n3
  fresh "$b"
  sed -i 's/^- Name: whisper_version$/- Name: whisper_version_typo/' \
    "$b/mod/CWhisper/CWhisper.apinotes"
  grep -q "whisper_version_typo" "$b/mod/CWhisper/CWhisper.apinotes" || fail "break n3 did not apply"
  expect_fail "an entry that names no declaration" notes_check "$b"
fi
echo "PASS ($mode)"

#!/usr/bin/env bash
# The two shared libraries export what their headers declare, and nothing
# else: libwhisper every WHISPER_API function of include/whisper/*.h but
# the server's headers (server.h, pgstore.h), and no whisper_server_* or
# whisper_store_pg_* symbol; every size macro has its function (sizes.h); libwhisper-server exactly the WHISPER_API
# functions of server.h and pgstore.h. The client library links only what a
# client needs (no server-only dependency, no libwhisper-server); the
# server library links libwhisper.
# usage: check_symbols.sh INCLUDE_DIR LIBWHISPER.so LIBWHISPER-SERVER.so
set -euo pipefail
inc=$1 client=$2 server=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
err() { echo "check_symbols: $*"; fail=1; }

# The functions a header declares (WHISPER_API or WHISPER_SERVER_API ...
# name(...)).
declared() {
  grep -hE '^WHISPER_(SERVER_)?API ' "$@" |
    sed -E 's/^.*[^A-Za-z0-9_]([A-Za-z0-9_]+)\(.*$/\1/' | sort -u
}
# (nm -D prints a versioned symbol as name@@NODE; the node is checked below.)
exported() { nm -D --defined-only "$1" | awk 'NF == 3 { sub(/@.*/, "", $3); print $3 }' | grep -v '^WHISPER_' | sort -u; }
# Every exported function sits in the library's version node.
nodes() { nm -D --defined-only "$1" | awk 'NF == 3 && $3 ~ /@/ { sub(/^[^@]*@@?/, "", $3); print $3 }' | sort -u; }

client_headers=()
for h in "$inc"/whisper/*.h; do
  case "$(basename "$h")" in
    server.h | pgstore.h) ;;
    *) client_headers+=("$h") ;;
  esac
done
declared "${client_headers[@]}" >"$work/client.api"
declared "$inc/whisper/server.h" "$inc/whisper/pgstore.h" >"$work/server.api"
exported "$client" >"$work/client.exp"
exported "$server" >"$work/server.exp"
[ -s "$work/client.api" ] && [ -s "$work/server.api" ] || err "no WHISPER_API declaration found under $inc"
[ "$(nodes "$client")" = WHISPER_1.0 ] || err "libwhisper's version nodes are not WHISPER_1.0:" $(nodes "$client")
[ "$(nodes "$server")" = WHISPER_SERVER_1.0 ] ||
  err "libwhisper-server's version nodes are not WHISPER_SERVER_1.0:" $(nodes "$server")

bad=$(grep -v '^whisper_' "$work/client.exp" || true)
[ -z "$bad" ] || err "libwhisper exports non-whisper_ symbols:" $bad
bad=$(grep -E '^whisper_(server_|store_pg_)' "$work/client.exp" || true)
[ -z "$bad" ] || err "libwhisper exports server symbols:" $bad
bad=$(grep -Ev '^whisper_(server_|store_pg_)' "$work/server.exp" || true)
[ -z "$bad" ] || err "libwhisper-server exports symbols other than whisper_server_* and whisper_store_pg_*:" $bad
bad=$(grep -Ev '^whisper_(server_|store_pg_)' "$work/server.api" || true)
[ -z "$bad" ] || err "server.h or pgstore.h declares functions not named whisper_server_* or whisper_store_pg_*:" $bad

# Declared exactly when exported.
if ! diff -u "$work/client.api" "$work/client.exp" >"$work/d1"; then
  err "libwhisper's exports differ from its headers' declarations (-declared +exported):"
  cat "$work/d1"
fi
if ! diff -u "$work/server.api" "$work/server.exp" >"$work/d2"; then
  err "libwhisper-server's exports differ from server.h's and pgstore.h's declarations (-declared +exported):"
  cat "$work/d2"
fi

# A function for every size and limit macro (sizes.h): each #define
# WHISPER_..._LEN, _MAX, _MAX_SIZE or _DIGITS has a function of the same
# name in lower case, declared by the library whose header defines it.
size_macros() {
  grep -hoE '^#define WHISPER_[A-Z0-9_]*(_LEN|_MAX|_MAX_SIZE|_DIGITS)[[:space:]]' "$@" |
    awk '{ print tolower($2) }' | sort -u
}
for f in $(size_macros "${client_headers[@]}"); do
  grep -qx "$f" "$work/client.api" || err "a size macro without its function (sizes.h): $f"
done
for f in $(size_macros "$inc/whisper/server.h" "$inc/whisper/pgstore.h"); do
  grep -qx "$f" "$work/server.api" || err "a size macro of server.h without its function: $f"
done

# What each links. The client library: the libraries a client needs (and
# the sanitizer runtimes of a sanitizer build), nothing else.
needed() { objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }'; }
client_ok='^(libc|libm|libsodium|libprotobuf-c|libcrypto|libsqlite3|libasan|libubsan|libgcc_s|libstdc\+\+)\.so'
bad=$(needed "$client" | grep -Ev "$client_ok" || true)
[ -z "$bad" ] || err "libwhisper links what a client does not need:" $bad
# (Outputs are captured before they are matched: grep -q in a pipe could
# cut the writer short, and pipefail would count its SIGPIPE.)
server_needed=$(needed "$server")
[[ $'\n'$server_needed$'\n' =~ $'\n'libwhisper\.so\.[0-9]+$'\n' ]] ||
  err "libwhisper-server does not link libwhisper"
bad=$(grep -E '^libsqlite3' <<<"$server_needed" || true)
[ -z "$bad" ] || err "libwhisper-server links SQLite itself (stores are libwhisper's):" $bad
grep -Eq 'SONAME +libwhisper\.so\.[0-9]+$' <<<"$(objdump -p "$client")" || err "libwhisper has no SONAME"
grep -Eq 'SONAME +libwhisper-server\.so\.[0-9]+$' <<<"$(objdump -p "$server")" ||
  err "libwhisper-server has no SONAME"

[ "$fail" = 0 ] || exit 1
echo "check_symbols: libwhisper $(wc -l <"$work/client.exp") symbols," \
  "libwhisper-server $(wc -l <"$work/server.exp"), as declared"

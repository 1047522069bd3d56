#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds two small programs
# against the installed libraries, each four ways (pkg-config shared and
# static, CMake find_package shared and static): an app on the client
# library (libwhisper) and a server on the server core (libwhisper-server,
# which brings libwhisper). Each must run and do its round trip.
# usage: test_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib* | head -1)
test -f "$prefix/include/whisper/whisper.h"
test -f "$prefix/include/whisper/server.h"
test -f "$libdir/pkgconfig/whisper.pc"
test -f "$libdir/pkgconfig/whisper-server.pc"
test -f "$libdir/cmake/whisper/whisperConfig.cmake"
test -f "$libdir/libwhisper-server.a"

# The installed shared libraries export what their headers declare (only
# whisper_* symbols, none whisper_server_* from libwhisper) and have SONAMEs.
client_so=$(ls "$libdir"/libwhisper.so.*.*.* | head -1)
server_so=$(ls "$libdir"/libwhisper-server.so.*.*.* | head -1)
"$src/tests/install/check_symbols.sh" "$prefix/include" "$client_so" "$server_so"
grep -q 'SONAME *libwhisper.so.1' <<<"$(objdump -p "$client_so")"
grep -q 'SONAME *libwhisper-server.so.1' <<<"$(objdump -p "$server_so")"

export PKG_CONFIG_PATH=$libdir/pkgconfig
# A static build defines WHISPER_STATIC (core.h: no dllimport on Windows).
[[ " $(pkg-config --static --cflags whisper-server) " == *" -DWHISPER_STATIC "* ]] ||
  { echo "pkg-config --static --cflags whisper-server lacks -DWHISPER_STATIC"; exit 1; }
[[ " $(pkg-config --cflags whisper) " != *WHISPER_STATIC* ]] ||
  { echo "pkg-config --cflags whisper (shared) defines WHISPER_STATIC"; exit 1; }
cc=${CC:-cc}
deps_static=$(pkg-config --static --libs-only-l libsodium libprotobuf-c libcrypto sqlite3)
for prog in main server; do
  c=$src/tests/install/consumer/$prog.c
  pc=whisper archives=$libdir/libwhisper.a
  if [ $prog = server ]; then pc=whisper-server archives="$libdir/libwhisper-server.a $archives"; fi
  $cc -o "$work/pc_${prog}_shared" "$c" $(pkg-config --cflags --libs $pc)
  LD_LIBRARY_PATH=$libdir "$work/pc_${prog}_shared"
  # static: the archives plus their private requirements
  $cc -o "$work/pc_${prog}_static" "$c" $(pkg-config --static --cflags $pc) $archives $deps_static
  "$work/pc_${prog}_static"
  if [[ $(ldd "$work/pc_${prog}_static") == *libwhisper* ]]; then
    echo "static consumer $prog links a libwhisper shared library"
    exit 1
  fi
done
# What a shared consumer loads (captured first: grep -q in a pipe would cut
# ldd short, and pipefail would take its SIGPIPE for a failure).
loads() { LD_LIBRARY_PATH=$libdir ldd "$1"; }
# An app built with pkg-config whisper does not load the server library.
case $(loads "$work/pc_main_shared") in
  *libwhisper-server*) echo "the client consumer loads libwhisper-server"; exit 1 ;;
esac
case $(loads "$work/pc_server_shared") in
  *"libwhisper-server.so.1 => $libdir/"*) ;;
  *) echo "the server consumer does not load the installed libwhisper-server"; exit 1 ;;
esac

cmake -S "$src/tests/install/consumer" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/cm/consumer_shared"
"$work/cm/consumer_static"
LD_LIBRARY_PATH=$libdir "$work/cm/consumer_server_shared"
"$work/cm/consumer_server_static"
case $(loads "$work/cm/consumer_server_shared") in
  *"libwhisper-server.so.1 => $libdir/"*) ;;
  *) echo "consumer_server_shared does not load the installed libwhisper-server"; exit 1 ;;
esac
for exe in consumer_shared consumer_static consumer_server_static; do
  case $(loads "$work/cm/$exe") in
    *libwhisper-server*) echo "$exe loads libwhisper-server"; exit 1 ;;
  esac
done
echo "install test: 8 consumers (4 client, 4 server) built and ran"

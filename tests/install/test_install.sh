#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds a small program
# against the installed library four ways: pkg-config shared and static,
# CMake find_package shared and static. Each must run and round-trip.
# usage: test_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib* | head -1)
test -f "$prefix/include/whisper/whisper.h"
test -f "$libdir/pkgconfig/whisper.pc"
test -f "$libdir/cmake/whisper/whisperConfig.cmake"

# Only whisper_* symbols leave the shared library, and it has a SONAME.
so=$(ls "$libdir"/libwhisper.so.*.*.* | head -1)
bad=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^whisper_' || true)
if [ -n "$bad" ]; then echo "exported non-whisper symbols: $bad"; exit 1; fi
objdump -p "$so" | grep -q 'SONAME *libwhisper.so.0'

export PKG_CONFIG_PATH=$libdir/pkgconfig
cc=${CC:-cc}
main=$src/tests/install/consumer/main.c
$cc -o "$work/pc_shared" "$main" $(pkg-config --cflags --libs whisper)
LD_LIBRARY_PATH=$libdir "$work/pc_shared"
# static: the archive plus its private requirements
$cc -o "$work/pc_static" "$main" $(pkg-config --cflags whisper) "$libdir/libwhisper.a" \
  $(pkg-config --static --libs-only-l libsodium libprotobuf-c libcrypto sqlite3)
"$work/pc_static"
if ldd "$work/pc_static" | grep -q libwhisper; then echo "static consumer links libwhisper.so"; exit 1; fi

cmake -S "$src/tests/install/consumer" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/cm/consumer_shared"
"$work/cm/consumer_static"
echo "install test: 4 consumers built and ran"

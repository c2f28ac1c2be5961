#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` once, as a benchmark peer for our servers: from the
# llama.cpp sources vendored in the pinned llama-cpp-python sdist (LLAMA_VERSION in install.sh),
# with the same CPU flags as our llama-cpp-python build (LLAMA_CMAKE_ARGS, else llama-flags.sh),
# statically linked to its ggml. The binary is cached per version + flag set under
#   ${XDG_CACHE_HOME:-~/.cache}/model-servers/llama-server/<key>/llama-server
# and later runs just print its path. A build takes about 14 minutes on 2 cores (measured: 857 s
# wall, including the 77 MB sdist download).
# Needs cmake and a C/C++ compiler (Debian: apt-get install -y cmake g++).
# Progress goes to stderr; the last stdout line is the binary's absolute path:
#   BIN=$(bash scripts/build-llama-server.sh | tail -1)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^LLAMA_VERSION=//p' scripts/install.sh | head -1)
[[ -n "$VERSION" ]] || { echo "error: no LLAMA_VERSION= line in scripts/install.sh" >&2; exit 1; }
FLAGS=${LLAMA_CMAKE_ARGS:-$(bash scripts/llama-flags.sh)}
KEY=$(echo "$VERSION $FLAGS" | sha256sum | cut -c1-16)
DEST_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/model-servers/llama-server/$KEY"
DEST="$DEST_DIR/llama-server"

if [[ -x "$DEST" ]]; then
    echo ">>> llama-server $VERSION: cached build for: $FLAGS" >&2
    echo "$DEST"
    exit 0
fi

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || command -v gcc >/dev/null || missing+=("a C compiler")
command -v c++ >/dev/null || command -v g++ >/dev/null || missing+=("a C++ compiler")
if (( ${#missing[@]} )); then
    echo "error: building llama-server needs cmake and a C/C++ compiler; missing: ${missing[*]}" >&2
    echo "       install them with: apt-get install -y cmake g++" >&2
    exit 1
fi

PY=python3
[[ -x .venv/bin/python ]] && PY=.venv/bin/python

TMP=$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")
PART="$DEST_DIR/.llama-server.tmp.$$"
trap 'rm -rf "$TMP" "$PART"' EXIT

echo ">>> llama-server $VERSION: downloading the llama-cpp-python sdist" >&2
"$PY" -m pip download -q --no-binary :all: --no-deps -d "$TMP" "llama-cpp-python==$VERSION" >&2
tar -xzf "$TMP"/llama_cpp_python-"$VERSION".tar.gz -C "$TMP"
SRC="$TMP/llama_cpp_python-$VERSION/vendor/llama.cpp"
[[ -f "$SRC/tools/server/CMakeLists.txt" ]] || { echo "error: no llama.cpp server sources in $SRC" >&2; exit 1; }

# tools/server is only added when LLAMA_BUILD_COMMON, LLAMA_BUILD_TOOLS and LLAMA_BUILD_SERVER are
# on. LLAMA_CURL is gone from this llama.cpp (deprecated, ignored); HTTPS (LLAMA_OPENSSL) is not
# needed for a local peer. No web UI: with LLAMA_USE_PREBUILT_UI=ON the build would download it.
read -r -a CPU_FLAGS <<< "$FLAGS"
CMAKE_FLAGS=("${CPU_FLAGS[@]}"
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF)
echo ">>> llama-server $VERSION: building (several minutes) with: ${CMAKE_FLAGS[*]}" >&2
cmake -S "$SRC" -B "$TMP/build" "${CMAKE_FLAGS[@]}" >&2
cmake --build "$TMP/build" --target llama-server -j "$(nproc)" >&2

BUILT="$TMP/build/bin/llama-server"
[[ -x "$BUILT" ]] || BUILT=$(find "$TMP/build" -type f -name llama-server -perm -u+x | head -1)
[[ -n "$BUILT" && -x "$BUILT" ]] || { echo "error: the build produced no llama-server binary" >&2; exit 1; }

# Copy next to the destination, then rename: a half-written binary never has the final name.
mkdir -p "$DEST_DIR"
cp "$BUILT" "$PART"
mv -f "$PART" "$DEST"
echo ">>> llama-server $VERSION: built $DEST" >&2
echo "$DEST"

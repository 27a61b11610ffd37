#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the whole test suite with CTest (GoogleTest executables),
# then each libFuzzer target briefly (scripts/fuzz.sh; FUZZ_SECONDS each, default 15) when clang
# and its fuzzer runtime are installed. A fuzz finding fails the run like a failing test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
# Debian's libtorch mixes OpenMP and OpenBLAS threads; the tiny test models run best on one.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
ctest --test-dir build --output-on-failure -j"$(nproc)"

fuzzer_runtime() { command -v clang++ >/dev/null 2>&1 && [ -f "$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a" ]; }
if fuzzer_runtime; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
else
  echo "test: clang++ or libclang-rt-14-dev missing: the fuzz targets were not run" >&2
fi

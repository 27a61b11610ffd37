#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the whole test suite with CTest (GoogleTest executables).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
# Debian's libtorch mixes OpenMP and OpenBLAS threads; the tiny test models run best on one.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
ctest --test-dir build --output-on-failure -j"$(nproc)"

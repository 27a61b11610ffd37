#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp, see fuzz/README.md) with clang in their own build
# folder, seeds each corpus, and runs each target for a given time under memory and time limits.
# Prints executions and coverage per target; exits 1 when any target finds a crash, a sanitizer
# report, a leak, a slow input or an out-of-memory input (the input is kept under fuzz/findings/).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET ...]   (default: every target)
# Environment: FUZZ_BUILD_DIR (build-fuzz), FUZZ_RSS_MB (2048: -rss_limit_mb and -malloc_limit_mb),
#   FUZZ_TIMEOUT_S (10: one input), FUZZ_NICE (0: niceness), FUZZ_ARGS (extra libFuzzer flags),
#   SPARSEDIT_GOLDEN_DIR (../shared/golden: more seeds, when present), FUZZ_SKIP_BUILD (set: use
#   the targets already built, e.g. for several runs in parallel, one target each).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-60}
shift || true
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
RSS_MB=${FUZZ_RSS_MB:-2048}
TIMEOUT_S=${FUZZ_TIMEOUT_S:-10}
NICE=${FUZZ_NICE:-0}
GOLDEN=${SPARSEDIT_GOLDEN_DIR:-../shared/golden}

CXX=${FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}
if [ -z "$CXX" ]; then
  echo "fuzz: clang++ not found (scripts/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 2
fi
if [ -z "${FUZZ_SKIP_BUILD:-}" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$CXX" \
    -DSPARSEDIT_FUZZ=ON -DSPARSEDIT_TESTS=OFF >/dev/null
  nice -n "$NICE" cmake --build "$BUILD" --target fuzz -j"${FUZZ_BUILD_JOBS:-$(nproc)}"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi

# Small files from the golden reference folder join the generated seeds when it is there; they
# are copied at run time only, never committed.
# Copies the golden files find(1) matches into the corpus, named by their path under the folder.
copy_golden() {
  local corpus=$1
  shift
  find "$@" 2>/dev/null | while read -r f; do
    rel=${f#"$GOLDEN"/}
    cp "$f" "$corpus/golden_${rel//\//_}"
  done
}

golden_seeds() {
  local t=$1 corpus=$2
  [ -d "$GOLDEN" ] || return 0
  case $t in
    fuzz_safetensors) copy_golden "$corpus" "$GOLDEN" -name '*.safetensors' -size -40k ;;
    fuzz_spiece) copy_golden "$corpus" "$GOLDEN/t5/tokenizer" -name spiece.model ;;
    fuzz_sharded_index) copy_golden "$corpus" "$GOLDEN" -name '*.index.json' -size -40k ;;
    fuzz_pixart_config) copy_golden "$corpus" "$GOLDEN/pixart" -path '*transformer/config.json' ;;
    fuzz_pickle)
      if [ -f "$GOLDEN/dit/dit_train_checkpoint.pt" ] && command -v unzip >/dev/null; then
        unzip -p "$GOLDEN/dit/dit_train_checkpoint.pt" '*/data.pkl' > "$corpus/golden_train_checkpoint.pkl" || true
      fi ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1

failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$BUILD/$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t (expected $bin)" >&2; exit 2; }
  corpus="fuzz/corpus/$t"
  findings="fuzz/findings/$t"
  mkdir -p "$corpus" "$findings"
  SPARSEDIT_FUZZ_WRITE_SEEDS="$corpus" "$bin" >/dev/null 2>&1 || { echo "fuzz: $t could not write its seeds" >&2; exit 2; }
  golden_seeds "$t" "$corpus"
  extra_dirs=()
  [ -d "fuzz/regressions/$t" ] && extra_dirs+=("fuzz/regressions/$t")
  log="$findings/last_run.log"
  echo "fuzz: $t for ${SECONDS_PER}s (rss/malloc limit ${RSS_MB} MB, ${TIMEOUT_S}s per input)"
  rc=0
  # shellcheck disable=SC2086
  nice -n "$NICE" "$bin" -max_total_time="$SECONDS_PER" -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB" \
    -timeout="$TIMEOUT_S" -print_final_stats=1 -artifact_prefix="$findings/" ${FUZZ_ARGS:-} \
    "$corpus" "${extra_dirs[@]}" > "$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -1 | awk '{print $2}')
  ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -1 | awk '{print $2}')
  corp=$(find "$corpus" -type f | wc -l)
  line=$(printf '%-20s execs %10s  cov %6s  ft %6s  corpus %5s' "$t" "$execs" "${cov:--}" "${ft:--}" "$corp")
  if [ "$rc" -ne 0 ]; then
    line="$line  FAILED (exit $rc)"
    failed+=("$t")
    echo "fuzz: $t FAILED; the end of its log ($log):" >&2
    tail -n 40 "$log" >&2
    for a in "$findings"/crash-* "$findings"/leak-* "$findings"/timeout-* "$findings"/oom-* "$findings"/slow-unit-*; do
      [ -e "$a" ] && echo "fuzz: reproduce with: $bin $a" >&2
    done
  fi
  summary+=("$line")
done

echo "fuzz: summary (${SECONDS_PER}s per target)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILURE in ${failed[*]}: see the inputs under fuzz/findings/ (add each, once fixed, to fuzz/regressions/<target>/)" >&2
  exit 1
fi
echo "fuzz: no findings"

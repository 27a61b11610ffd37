#!/usr/bin/env bash
# Reproduces the demo models: a class-conditional DiT trained on MNIST (1x32x32 pixels, patch 2,
# 256 tokens), then a SparseDiT converted from its EMA weights and fine-tuned for every density of
# the schedule (multi-density batches, Min-SNR-5 as the SparseDiT code). The final EMA weights,
# without training state, go to models/mnist-dit.safetensors and models/mnist-sparsedit.safetensors
# with their config, layout and recommended sampling settings, so `sparsedit sample --ckpt FILE`
# needs no other flag.
#
# Usage: scripts/train_mnist.sh [build-dir]      (default build-dir: build)
# Environment: RESULTS (results/mnist), BASE_STEPS (2000), DENSE_STEPS (9000), SPARSE_STEPS (1000),
# THREADS (1).
# About 3 h on this 2-core machine with THREADS=2 and nothing else running (measured: dense ~1.0-1.15
# steps/s, SparseDiT ~2.5 steps/s). Re-running it continues an interrupted phase from its newest
# checkpoint (training resumes exactly), and raising DENSE_STEPS continues the dense run; the
# SparseDiT is fine-tuned in a folder named after the dense step it starts from, so it is redone.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
BIN="$BUILD_DIR/sparsedit"
RESULTS="${RESULTS:-results/mnist}"
BASE_STEPS="${BASE_STEPS:-2000}"
DENSE_STEPS="${DENSE_STEPS:-9000}"
SPARSE_STEPS="${SPARSE_STEPS:-1000}"
# One thread per process when the machine is shared (OpenMP's second thread then mostly waits);
# THREADS=2 on an idle 2-core machine is ~1.5x faster.
THREADS="${THREADS:-1}"
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS=1

if [ -f "$BUILD_DIR/build.ninja" ]; then
  cmake --build "$BUILD_DIR" --target sparsedit
else
  scripts/setup.sh "$BUILD_DIR"
fi

# One phase: a new run, or (when its folder already holds checkpoints) the exact continuation of
# an interrupted one, which takes the run's own settings from its checkpoint.
phase() {
  local dir="$1"
  local -n run_args="$2"
  shift 2
  if ls "$dir"/checkpoints/[0-9]*.safetensors >/dev/null 2>&1; then
    "$BIN" train --resume "$dir" --threads "$THREADS" "$@"
  else
    "$BIN" train --results-dir "$dir" --threads "$THREADS" "${run_args[@]}" "$@"
  fi
}

mkdir -p models
# Recommended in both files: DPM-Solver++(2M), 25 steps, guidance 3 on every channel.
SAMPLING=(--sample-steps 25 --sample-sampler dpm++2m --sample-cfg 3)

# Dense DiT, in two phases: plain epsilon-mse (the reference loss) for BASE_STEPS, then Min-SNR-5
# weighting (Hang et al.; the SparseDiT code's loss), as the plain loss still drew speckles rather
# than strokes after 2000 steps here.
DENSE_RUN=(--data mnist --hidden-size 64 --depth 6 --num-heads 4 --patch-size 2
           --global-batch-size 32 --lr 1e-3 --grad-clip 1 --ema-decay 0.995 --seed 0)
echo "== 1/3 dense DiT: $BASE_STEPS steps"
phase "$RESULTS/dit" DENSE_RUN --steps "$BASE_STEPS" --ckpt-every 500 --log-every 50 --sample-every 1000 \
  "${SAMPLING[@]}"

BASE_CKPT="$RESULTS/dit/checkpoints/$(printf %07d "$BASE_STEPS").safetensors"
SNR_RUN=(--data mnist --init-from "$BASE_CKPT" --min-snr-gamma 5
         --global-batch-size 32 --lr 1e-3 --grad-clip 1 --ema-decay 0.995 --seed 2)
echo "== 2/3 dense DiT with Min-SNR-5 from $BASE_CKPT: $DENSE_STEPS steps"
phase "$RESULTS/dit-snr" SNR_RUN --steps "$DENSE_STEPS" --ckpt-every 500 --log-every 50 --sample-every 1000 \
  "${SAMPLING[@]}" --export models/mnist-dit.safetensors

DENSE_CKPT="$RESULTS/dit-snr/checkpoints/$(printf %07d "$DENSE_STEPS").safetensors"
# The paper's layout at this depth (Poolingformer, one SDTM of gen/sparse/recovery/dense, top
# block) and its headline density r in [0.61, 0.86]: sparse grids 10x10 ... 6x6 of the 16x16.
SPARSE_RUN=(--data mnist --init-from "$DENSE_CKPT" --sparse --layout 1:1x1,1,1,1:1 --density range:0.61,0.86
            --min-snr-gamma 5 --global-batch-size 32 --lr 5e-4 --grad-clip 1 --ema-decay 0.99 --seed 1)
echo "== 3/3 SparseDiT from $DENSE_CKPT: $SPARSE_STEPS steps"
phase "$RESULTS/sparsedit-from-$DENSE_STEPS" SPARSE_RUN --steps "$SPARSE_STEPS" --ckpt-every 200 --log-every 50 --sample-every 500 \
  "${SAMPLING[@]}" --export models/mnist-sparsedit.safetensors

echo "== samples"
for m in dit sparsedit; do
  "$BIN" sample --ckpt "models/mnist-$m.safetensors" --class-labels 0,1,2,3,4,5,6,7,8,9 \
    --nrow 10 --threads "$THREADS" -o "$RESULTS/mnist-$m.png"
done
ls -l models/mnist-dit.safetensors models/mnist-sparsedit.safetensors

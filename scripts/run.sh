#!/usr/bin/env bash
# The main job: set up (scripts/setup.sh), then show the engine end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
BIN=build/sparsedit
if [ -f models/mnist-dit.safetensors ] && [ -f models/mnist-sparsedit.safetensors ] && $BIN demo --help >/dev/null 2>&1; then
  exec $BIN demo "$@"
fi
# Without the shipped MNIST models: the reference models of ../shared/golden.
G=../shared/golden
OUT=out
mkdir -p $OUT
$BIN info --ckpt $G/dit/dit.pt
$BIN sample --ckpt $G/dit/dit.pt --num-heads 4 --class-labels 1,7,3 --num-sampling-steps 10 --cfg-scale 4 \
  --vae none --save-latents $OUT/dit_latents.safetensors
$BIN convert --from $G/sparsedit/dense_dit.pt --to $OUT/sparsedit.safetensors --layout 1:2x1,1,1,1:1 --num-heads 4
$BIN sample --ckpt $OUT/sparsedit.safetensors --class-labels 1,0,9 --num-sampling-steps 50 \
  --density range:0.61,0.86 --vae $G/vae --save-latents $OUT/sparse_latents.safetensors -o $OUT/sparse.png
$BIN flops --model DiT-XL/2 --image-size 256 --sparse --density range:0.61,0.86

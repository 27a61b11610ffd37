#pragma once
// Everything `sparsedit eval` can be pointed at, reduced to 8-bit images (plus labels when the
// source carries them) or to precomputed feature statistics:
//   - a folder of PNG/JPEG files (sorted recursive walk; all one size);
//   - a safetensors file: tensor `images`, else `latents` (or the named key), (N, C, H, W) float in
//     [-1, 1] or uint8; labels from tensor `labels` or metadata `class_labels` (what
//     `sample --save-latents` writes);
//   - an ADM-style .npz: `arr_0` uint8 NHWC (labels from `arr_1`), or statistics `mu` + `sigma`;
//   - the names mnist-test / mnist-train: the held-out / training digits (labels known).
// Float images are quantized as DiT's sampler does before saving them, so one sample set gives the
// same features whichever of these forms it was stored in.
#include <torch/torch.h>

#include <optional>
#include <string>

#include "eval/fid.h"

namespace sdit {

struct EvalInput {
  std::string source;
  std::string description;             // e.g. "1000 images 32x32x1 from samples.safetensors"
  torch::Tensor images;                // (N, C, H, W) uint8; undefined for statistics
  torch::Tensor labels;                // (N) int64; undefined when unknown
  std::optional<FeatureStats> stats;   // set for a statistics .npz
};

// key: the safetensors tensor to read ("" = images, else latents). cache_dir: MNIST's cache ("" =
// default_cache_dir()).
EvalInput load_eval_input(const std::string& source, const std::string& key, const std::string& cache_dir);

// mu/sigma of a statistics .npz (ADM reference batch or `eval --save-stats`); float32 or float64.
FeatureStats read_stats_npz(const std::string& path);
void write_stats_npz(const std::string& path, const FeatureStats& stats);

// "3,1,4" or a file: .safetensors (tensor `labels` or metadata `class_labels`), .npz (`labels` or
// `arr_1`), or text (integers separated by commas or whitespace). Returns (N) int64.
torch::Tensor parse_labels(const std::string& spec);

}  // namespace sdit

#pragma once
// Classifier-free guidance shared by every family (docs/method.md §1, DiT's forward_with_cfg).
#include <torch/torch.h>

#include <functional>

#include "models/conditioning.h"

namespace sdit {

using DenoiseFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c)>;

struct GuidanceOptions {
  double scale = 4.0;
  int64_t guided_channels = 3;  // DiT's release guides the first 3; -1: every eps channel
  int64_t eps_channels = 4;     // the model's input channels (the eps part of its output)
  int64_t channel_axis = 1;     // 2 for Latte's frames-first (B, F, C, H, W)
};

// x and c hold [cond; uncond] halves; like the reference, only the first half of x is used for
// both. The guided eps is written to both halves, the other channels are the model's own.
torch::Tensor forward_with_cfg(const DenoiseFn& f, const torch::Tensor& x, const torch::Tensor& t,
                               const Conditioning& c, const GuidanceOptions& opt);

}  // namespace sdit

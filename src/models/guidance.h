#pragma once
// Classifier-free guidance shared by every backbone (SPEC §1, DiT forward_with_cfg).
#include <torch/torch.h>

#include <functional>

namespace sdit {

using BackboneFn =
    std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y)>;

// x, y hold [cond; uncond] halves; like the reference, only the first half of x is used for both.
// guided_channels = 3 reproduces DiT's release; -1 guides every eps channel.
torch::Tensor forward_with_cfg(const BackboneFn& f, const torch::Tensor& x, const torch::Tensor& t,
                               const torch::Tensor& y, double cfg_scale, int64_t guided_channels,
                               int64_t eps_channels);

}  // namespace sdit

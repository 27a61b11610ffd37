#pragma once
// Reverse-process samplers over a (respaced) GaussianDiffusion.
//
// "ddpm"    ancestral sampling (p_sample_loop of the reference).
// "ddim"    DDIM with eta (ddim_sample_loop of the reference; eta 0 is deterministic).
// "dpm++2m" DPM-Solver++(2M) (Lu et al. 2022, data prediction, multistep, second order).
//
// RNG contract: ddpm and ddim draw exactly one randn_like(x) per step from the global torch
// generator, after the model call, on every step including the last (where it is masked out or
// multiplied by sigma = 0). With the same manual_seed this reproduces the reference latents and
// leaves the generator where the reference leaves it. dpm++2m draws no random numbers at all.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "diffusion/gaussian_diffusion.h"

namespace sdit {

struct SampleOptions {
  std::string sampler = "ddpm";  // "ddpm", "ddim", "dpm++2m"
  double eta = 0.0;              // ddim only
  bool clip_denoised = false;    // clamp the x0 prediction to [-1, 1] (DiT samples with false)
  std::function<void(int64_t step, int64_t total)> on_step;  // called after step 1..total
  // The noise ddpm/ddim add at reverse step `step` (1..total), shaped like x; empty: randn_like(x)
  // from the global generator (the reference's order). Keyed per-image sampling sets it so that an
  // image's noise does not depend on the batch it is drawn in (util/keyed_rng.h).
  std::function<torch::Tensor(const torch::Tensor& x, int64_t step)> noise;
};

// The sampler names sample_loop accepts.
const std::vector<std::string>& sampler_names();

// Starts from x_T = noise and runs num_timesteps() model calls; returns x_0 (the final x0
// prediction for dpm++2m). Runs without autograd. Unknown sampler -> sdit::Error.
torch::Tensor sample_loop(const GaussianDiffusion& d, const ModelFn& model, const torch::Tensor& noise,
                          const SampleOptions& opt);

// Single reference steps at respaced index t_index (both draw one randn_like(x)).
// `noise` undefined: one randn_like(x) from the global generator.
torch::Tensor ddpm_step(const GaussianDiffusion& d, const ModelFn& model, const torch::Tensor& x, int64_t t_index,
                        bool clip_denoised, const torch::Tensor& noise = {});
torch::Tensor ddim_step(const GaussianDiffusion& d, const ModelFn& model, const torch::Tensor& x, int64_t t_index,
                        double eta, bool clip_denoised, const torch::Tensor& noise = {});

}  // namespace sdit

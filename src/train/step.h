#pragma once
// One optimisation step's forward and backward passes, shared by `sparsedit train` and
// `bench --train`: the global batch is split into one micro-batch per density interval
// (docs/method.md §4), each run at its interval's sparse grid with t uniform inside the interval,
// and the interval-weighted losses' gradients are accumulated (the optimiser step is the caller's).
//
// Randomness, in this order per micro-batch: t = randint on the CPU generator, noise = randn on the
// CPU generator (so the stream does not depend on the device), then whatever the model draws
// inside its forward (label dropout, on the device's generator).
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "diffusion/gaussian_diffusion.h"
#include "models/model.h"
#include "train/batching.h"

namespace sdit {

// The loss of one batch on one sparse grid (empty: dense): GaussianDiffusion::training_losses with
// the conditioning closed over. The model runs in its own dtype; the diffusion arithmetic in float32.
GaussianDiffusion::Losses batch_losses(Model& model, const GaussianDiffusion& diffusion, const torch::Tensor& x0,
                                       const torch::Tensor& t, const Conditioning& cond, const torch::Tensor& noise,
                                       const Grid& sparse, double min_snr_gamma);

struct StepLosses {
  double loss = 0, mse = 0, vb = 0;  // interval-weighted means over the global batch
};

struct MicroBatch {
  size_t interval = 0;
  const DensityInterval* iv = nullptr;
  torch::Tensor t;        // the timesteps drawn (CPU)
  double weighted_loss = 0;  // mean loss × interval weight (set before the backward pass)
};

struct StepOptions {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;  // the model's dtype (inputs are cast to it)
  double min_snr_gamma = 0.0;
  std::function<void(const MicroBatch&)> before_forward;  // e.g. logging which t were drawn
  std::function<void(const MicroBatch&)> before_backward;  // may throw to stop (a non-finite loss)
};

// x0 (global batch, on the CPU) and cond (same rows) are split in interval order.
StepLosses accumulate_gradients(Model& model, const GaussianDiffusion& diffusion,
                                const std::vector<DensityInterval>& intervals, const torch::Tensor& x0,
                                const Conditioning& cond, const StepOptions& opt);

}  // namespace sdit

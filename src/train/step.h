#pragma once
// One optimisation step's forward and backward passes, shared by `sparsedit train` and
// `bench --train`: the global batch is split into one micro-batch per density interval
// (docs/method.md §4), each run at its interval's sparse grid with t uniform inside the interval,
// and the interval-weighted losses' gradients are accumulated (the optimiser step is the caller's).
//
// Randomness is keyed on (seed, step, sample) (util/keyed_rng.h), sample = the position in the
// interval-ordered global batch: each sample's t, noise and label-dropout coin are the same whichever
// rank computes it and however the batch is split, so W data-parallel ranks compute the single-process
// gradient up to summation order (docs/distributed.md §8.2). Each sample's loss is weighted by
// w_k / n_k with n_k its interval's size in the GLOBAL batch, so the ranks' gradients are summed, not
// averaged.
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

// Sums over this rank's samples of the weighted per-sample losses; their sums over the ranks (one
// process: the values themselves) are the interval-weighted means over the global batch.
struct StepLosses {
  double loss = 0, mse = 0, vb = 0;
};

struct MicroBatch {
  size_t interval = 0;
  const DensityInterval* iv = nullptr;
  const Segment* segment = nullptr;  // the samples of the interval this rank runs
  torch::Tensor t;        // the timesteps drawn (CPU)
  double weighted_loss = 0;  // sum of the weighted losses (set before the backward pass)
};

struct StepOptions {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;  // the model's dtype (inputs are cast to it)
  double min_snr_gamma = 0.0;
  uint64_t seed = 0;               // keys of the per-sample draws
  int64_t step = 1;                // the step being computed (1-based)
  double label_dropout = 0.0;      // classifier-free-guidance dropout (see take_label_dropout)
  std::vector<Segment> segments;   // this rank's share (shard_intervals); empty: every interval whole
  std::function<void(const MicroBatch&)> before_forward;  // e.g. logging which t were drawn
  std::function<void(const MicroBatch&)> before_backward;  // may throw to stop (a non-finite loss)
};

// x0 (on the CPU) and cond hold the rows of opt.segments in order (one process: the global batch in
// interval order). Gradients accumulate into the parameters; the optimiser step is the caller's.
StepLosses accumulate_gradients(Model& model, const GaussianDiffusion& diffusion,
                                const std::vector<DensityInterval>& intervals, const torch::Tensor& x0,
                                const Conditioning& cond, const StepOptions& opt);

// The model's label dropout moves to the trainer (keyed coins, RngStream::LabelDrop): switches it off
// inside the model's forward and returns its probability (0 for a model without label dropout).
double take_label_dropout(Model& model);

}  // namespace sdit

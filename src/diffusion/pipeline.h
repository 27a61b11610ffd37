#pragma once
// The sample.py flow over any Model, shared by `sample`, `demo` and training previews: seeded z,
// CFG doubling, respaced diffusion, the SparseDiT density schedule keyed on original timesteps.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/model.h"

namespace sdit {

struct SamplingRequest {
  std::vector<int64_t> labels;
  std::string steps = "250";      // respacing
  std::string sampler = "ddpm";
  double eta = 0.0;
  double cfg_scale = 4.0;         // 1.0: no guidance, single batch
  int64_t guided_channels = 3;    // -1: every eps channel
  std::string density;            // empty: full for a DiT, default_density for a SparseDiT
  int64_t seed = 0;
  int64_t batch_size = 0;         // <= 0: all labels in one run
  torch::Device device = torch::kCPU;
};

struct SamplingResult {
  torch::Tensor samples;                // (n, C, L, L) conditional samples, CPU
  std::map<int64_t, int64_t> side_calls;  // grid side -> model calls
  std::string density_description;
  std::vector<int64_t> visited_timesteps;  // original timesteps of one run
  int64_t steps = 0;                    // sampling steps of one run
  int64_t runs = 0;                     // chunks
  double seconds = 0.0;                 // wall time of the sampling loops
  double mean_gmacs = 0.0;              // per forward of one sample, mean over the steps
};

using SamplingProgress = std::function<void(int64_t run, int64_t runs, int64_t step, int64_t steps)>;

// The settings a checkpoint recommends in its "sampling" metadata (JSON written by `train`), as
// strings keyed num_sampling_steps, sampler, density, cfg_channels, cfg_scale, eta; empty when absent.
std::map<std::string, std::string> recommended_sampling(const Model& model);

// Sets the fields of `req` the checkpoint recommends, except those named in `keep` (settings the
// user gave explicitly): "steps", "sampler", "density", "cfg_channels", "cfg_scale", "eta".
void apply_recommended(const Model& model, SamplingRequest& req, const std::set<std::string>& keep = {});

// Validates labels, density and sampler against the model; throws sdit::Error with a clear message.
SamplingResult run_sampling(Model& model, const SamplingRequest& req, const SamplingProgress& progress = {});

}  // namespace sdit

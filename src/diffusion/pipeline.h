#pragma once
// The sample.py flow over any Model, shared by `sample`, `demo` and training previews: seeded z,
// CFG doubling, respaced diffusion, the SparseDiT density schedule keyed on original timesteps.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "diffusion/density_schedule.h"
#include "models/model.h"

namespace sdit {

// Conditioning drawn after the noise: called once per run (chunk) right after its z is drawn, from
// the same generator, with the run's first sample and sample count; returns that run's rows.
using AfterNoiseFn = std::function<Conditioning(int64_t first, int64_t rows, const torch::Device& device)>;

struct SamplingRequest {
  Conditioning cond;                   // one row per sample (labels, text features, ...)
  int64_t num_samples = 0;             // samples of an unconditional model (cond empty); else cond's rows
  std::optional<Conditioning> uncond;  // the CFG branch; default: the model's null conditioning
  int64_t height = 0, width = 0;       // latent size; 0: the model's own
  std::string steps = "250";           // respacing
  std::string sampler = "ddpm";        // pipeline_sampler_names()
  double eta = 0.0;
  double cfg_scale = 4.0;              // 1.0: no guidance, single batch
  int64_t guided_channels = 3;         // -1: every eps channel
  std::string density;                 // empty: full for a dense model, kDefaultDensity for a SparseDiT
  int64_t seed = 0;
  int64_t batch_size = 0;              // <= 0: all samples in one run
  torch::Device device = torch::kCPU;
  // Per-image keyed draws (util/keyed_rng.h): image first_image + i starts from
  // KeyedDraws(seed, 0).randn(Latent, {first_image + i}) and gets KeyedDraws(seed, k).randn(SamplerNoise,
  // ...) at reverse step k, whatever the batch or rank it is drawn in. false: the reference's single
  // stream (manual_seed(seed), z then the per-step noise, chunk after chunk).
  bool keyed = false;
  int64_t first_image = 0;
  // When set, each run's conditioning comes from here instead of `cond` (e.g. random class labels,
  // drawn with randint after z as Latte's sample.py does); num_samples gives the count.
  AfterNoiseFn after_noise;

  int64_t samples() const { return cond.empty() ? num_samples : cond.batch(); }
};

// An AfterNoiseFn drawing class labels randint(0, num_classes, (rows,)) on the run's device.
AfterNoiseFn random_labels_after_noise(int64_t num_classes);

struct SamplingResult {
  torch::Tensor samples;                 // (n, ...) conditional samples in the model's layout, CPU
  Conditioning cond;                     // the conditioning rows of the samples (drawn ones included), CPU
  std::map<Grid, int64_t> grid_calls;    // sparse grid -> model calls (most tokens first)
  std::string density_description;
  std::vector<int64_t> visited_timesteps;  // original timesteps of one run
  int64_t steps = 0;                     // sampling steps of one run
  int64_t runs = 0;                      // chunks
  double seconds = 0.0;                  // wall time of the sampling loops
  double mean_gmacs = 0.0;               // per forward of one sample, mean over the steps
};

using SamplingProgress = std::function<void(int64_t run, int64_t runs, int64_t step, int64_t steps)>;

// The settings a checkpoint recommends in its "sampling" metadata (JSON written by `train`), as
// strings keyed num_sampling_steps, sampler, density, cfg_channels, cfg_scale, eta; empty when absent.
std::map<std::string, std::string> recommended_sampling(const Model& model);

// Sets the fields of `req` the checkpoint recommends, except those named in `keep` (settings the
// user gave explicitly): "steps", "sampler", "density", "cfg_channels", "cfg_scale", "eta". Advisory
// metadata that does not parse is not fatal: the returned warnings say what was used instead.
std::vector<std::string> apply_recommended(const Model& model, SamplingRequest& req,
                                           const std::set<std::string>& keep = {});

// The density schedule a request runs: `density` (empty: the model's default) on the model's dense grid.
DensitySchedule sampling_schedule(const Model& model, const std::string& density, const Grid& dense);

// Mean GMACs (1e9) of one forward of one sample over the original timesteps the sampler visits.
double mean_gmacs(const Model& model, const DensitySchedule& sched, const std::vector<int64_t>& original_timesteps);

// ddpm (= iddpm, IDDPM's p_sample_loop), ddim, dpm++2m over the respaced diffusion with DiT's
// cond-first forward_with_cfg; dpm-solver: PixArt's DPM-Solver (diffusion/dpm_solver.h), whose steps
// are a plain count and whose guidance runs [uncond; cond] (guided_channels -1: every eps channel).
const std::vector<std::string>& pipeline_sampler_names();

// The original timesteps one run of `sampler` with `steps` visits (DPM-Solver's fractional model
// times rounded down), for costing a run without running it (`flops`).
std::vector<int64_t> sampler_timesteps(const std::string& sampler, const std::string& steps);

// Validates conditioning, density and sampler against the model; throws sdit::Error with a clear message.
// RNG order per run, as the families' sample.py: z, then the conditioning drawn after it (after_noise,
// or the family's own label draw: SamplingDefaults::labels_after_noise), then one draw per step.
SamplingResult run_sampling(Model& model, const SamplingRequest& req, const SamplingProgress& progress = {});

}  // namespace sdit

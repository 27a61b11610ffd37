#pragma once
// The arguments of a training run. They are stored (as JSON) in every checkpoint, so a resumed
// run takes its model, data and optimisation settings from the checkpoint it continues; only the
// "schedule" options (how long, where and how often to write) may change on resume.
#include <cstdint>
#include <set>
#include <string>

namespace sdit {

struct TrainOptions {
  // Data: "mnist" or a latent dataset folder written by `sparsedit encode`.
  std::string data = "mnist";
  std::string cache_dir;  // MNIST cache; "" -> default_cache_dir()

  // Model: a preset name (DiT-S/2, ...) and/or custom sizes (0 = from the preset).
  std::string model;
  int64_t hidden_size = 0, depth = 0, num_heads = 0, patch_size = 0;
  std::string init_from;  // dense (or SparseDiT) checkpoint to start from
  bool sparse = false;    // train a SparseDiT (converted from init_from when that is dense)
  std::string layout;     // SparseDiT layout, "" -> the family's default_layout (models/registry.h)
  std::string density;    // density schedule spec, "" -> default_density(N)
  std::string density_intervals;  // see plan_density_intervals; "" -> the schedule's stages

  // Optimisation (DiT's train.py defaults).
  double lr = 1e-4, weight_decay = 0.0, ema_decay = 0.9999, grad_clip = 0.0, min_snr_gamma = 0.0;
  int64_t global_batch_size = 256;
  int64_t steps = 1000;
  uint64_t seed = 0;

  // Schedule options: may differ on resume.
  std::string results_dir = "results";
  int64_t ckpt_every = 5000, log_every = 100, sample_every = 0;
  std::string sample_steps = "100";  // recommended sampling steps (and those of --sample-every grids)
  double sample_cfg = 4.0;           // recommended guidance scale
  std::string sample_sampler = "ddpm";  // recommended sampler: ddpm | ddim | dpm++2m
  std::string vae;                   // decodes --sample-every grids of a latent model
  std::string device = "cpu";
  std::string export_path;           // final EMA weights without training state

  std::string to_json() const;
  // Keys absent from the JSON keep their defaults; throws sdit::Error on malformed JSON.
  static TrainOptions from_json(const std::string& json);
  void validate() const;
};

// The JSON keys a resumed run keeps from its checkpoint.
const std::set<std::string>& run_defining_options();

// saved: the checkpoint's options; cli: the command line's; given: JSON keys the user set
// explicitly. Schedule options the user gave override; a run-defining one must equal the saved
// value (sdit::Error names it otherwise). results_dir defaults to the checkpoint's run folder.
TrainOptions merge_resume_options(const TrainOptions& saved, const TrainOptions& cli, const std::set<std::string>& given,
                                  const std::string& run_dir);

// DIR/checkpoints/0000100.safetensors
std::string checkpoint_file(const std::string& results_dir, int64_t step);
// The newest NNNNNNN.safetensors file in `dir`, or "" when there is none.
std::string newest_checkpoint(const std::string& dir);
// A checkpoint file as is; a folder: its newest NNNNNNN.safetensors, looking in DIR/checkpoints
// first. Throws sdit::Error when there is none.
std::string resolve_checkpoint(const std::string& path);
// The run folder of DIR/checkpoints/NNNNNNN.safetensors (DIR), else the file's folder.
std::string run_dir_of(const std::string& checkpoint);

}  // namespace sdit

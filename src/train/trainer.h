#pragma once
// `sparsedit train`: DiT's train.py loop (AdamW, EMA, class dropout, the reference loss) on MNIST
// or a latent dataset, plus SparseDiT's multi-density training (docs/method.md §4): each step runs one
// micro-batch per timestep interval at that interval's sparse grid and accumulates the gradients.
// The model may be of any family (models/registry.h); the data gives its size and classes.
//
// Reproducibility contract: all randomness of a step comes, in a fixed order, from the default
// generators (train/step.h: per micro-batch t = randint, noise = randn on the CPU generator, then
// the label dropout rand inside the model, on the training device's generator), and the data
// order is a function of (seed, step). A checkpoint stores the generators' states, so resuming replays the
// uninterrupted run bit for bit. Sample grids run under a saved-and-restored generator state.
//
// Checkpoint layout (one safetensors file, written atomically):
//   <name>                    EMA weights under the plain model names (what `sparsedit sample` loads)
//   train.model.<name>        the raw weights being optimised
//   train.opt.{exp_avg,exp_avg_sq,step}.<name>   AdamW state
//   train.rng.cpu, train.rng.cuda                generator states (uint8)
//   metadata: config/family/layout (the model's), step, args (TrainOptions JSON),
//             sampling (recommended settings for `sparsedit sample`), format
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "diffusion/density_schedule.h"
#include "diffusion/gaussian_diffusion.h"
#include "models/model.h"
#include "train/batching.h"
#include "train/optim.h"
#include "train/step.h"
#include "train/train_options.h"

namespace sdit {

struct StepStats {
  int64_t step = 0;          // steps completed
  double loss = 0, mse = 0, vb = 0;  // interval-weighted means over the global batch (log: over the log interval)
  double steps_per_sec = 0;  // since the run (or resume) started; log: over the log interval
  double lr = 0;
};

struct MicroBatchInfo {
  int64_t step = 0;  // the step being computed (1-based)
  size_t interval = 0;
  int64_t t_begin = 0, t_end = 0, batch = 0;
  Grid grid;  // empty: dense
  int64_t t_min = 0, t_max = 0;  // of the timesteps actually drawn
};

struct TrainHooks {
  std::function<void(const StepStats&)> on_step;            // after every step
  std::function<void(const StepStats&)> on_log;             // what goes to log.jsonl
  std::function<void(const MicroBatchInfo&)> on_micro_batch;  // right before each model forward
  std::function<void(int64_t step, Model& model)> before_step;  // before step `step` (1-based) draws anything
  std::function<void(const std::string&)> on_message;       // checkpoints, grids
};

class Trainer {
 public:
  static Trainer start(const TrainOptions& opt, TrainHooks hooks = {});
  // checkpoint: a file or a run/checkpoints folder (its newest file). See merge_resume_options.
  static Trainer resume(const std::string& checkpoint, const TrainOptions& cli, const std::set<std::string>& given,
                        TrainHooks hooks = {});

  // Trains until options().steps, writing checkpoints, log lines and grids on schedule, and a
  // final checkpoint (and --export file). A non-finite loss stops it with sdit::Error; the files
  // already written stay as they are.
  void run();

  // The full training checkpoint, and the EMA weights alone (no train.* tensors).
  void save_checkpoint(const std::string& path);
  void export_weights(const std::string& path) const;

  int64_t step() const { return step_; }
  const TrainOptions& options() const { return opt_; }
  Model& model() { return model_; }
  Model& ema() { return ema_; }
  AdamW& optimizer() { return *adamw_; }
  const std::vector<DensityInterval>& intervals() const { return intervals_; }
  const std::string& density() const { return density_; }
  std::string sampling_json() const;  // recommended `sparsedit sample` settings
  std::string describe() const;      // data, model, intervals: for the CLI's start-up lines

 private:
  Trainer() = default;
  void load_data();
  void build_fresh();
  Model model_from_init();
  Model model_from_scratch();
  void setup();
  void train_step();
  void log_line(const StepStats& s) const;
  void write_sample_grid();
  void message(const std::string& m) const;

  TrainOptions opt_;
  TrainHooks hooks_;
  torch::Device device_{torch::kCPU};
  torch::Tensor data_;       // (N, ...) training inputs, CPU
  Conditioning data_cond_;   // their conditioning rows (class labels), CPU
  int64_t num_classes_ = 0;
  Model model_, ema_;
  std::unique_ptr<AdamW> adamw_;
  std::unique_ptr<GaussianDiffusion> diffusion_;
  DensitySchedule schedule_;
  std::string density_;
  std::vector<DensityInterval> intervals_;
  std::unique_ptr<EpochSampler> sampler_;
  int64_t step_ = 0;
  std::string last_checkpoint_;
  double log_loss_ = 0, log_mse_ = 0, log_vb_ = 0;
  int64_t log_steps_ = 0;
};

}  // namespace sdit

#pragma once
// Wall-clock benchmark of sampling forwards (or training steps) of any model family, dense and
// SparseDiT, in the manner of llama-bench: every combination of size × density × batch × threads
// becomes one row, measured after a warm-up and repeated. A sampling step's cost is the mean over the
// schedule's steps, so each distinct sparse grid the density schedule visits is timed once per
// repetition and weighted by its step count.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/profile.h"
#include "diffusion/density_schedule.h"
#include "models/model.h"
#include "dist/world.h"
#include "train/batching.h"

namespace sdit {

// Where the benchmarked weights come from.
struct BenchModelSource {
  std::string name;             // shown in the rows: preset name or checkpoint path
  std::string ckpt;             // empty: build from `spec` (random weights)
  bool random_weights = false;  // with ckpt: the checkpoint's architecture, freshly initialised
  ModelSpec spec;               // preset (+ overrides); the latent size is set per case
  std::optional<SparseLayout> layout;  // SparseDiT layout for random models (default by depth)
  LoadOptions load;                    // checkpoints whose width has no default head count
};

struct BenchCase {
  int64_t input_size = 0;  // latent side fed to the model (0: a checkpoint's own size)
  std::string density;     // as the user wrote it
  int64_t batch = 1;       // images per step (CFG doubles the forward batch)
  int threads = 1;
};

struct BenchOptions {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
  bool cfg = false;
  double cfg_scale = 1.5;  // the paper's evaluation setting; it does not change the cost
  int reps = 3;
  int warmup = 1;              // untimed forwards per grid side before the timed ones
  std::string steps = "250";  // respacing of the 1000 training steps
  uint64_t seed = 0;
  // Time optimisation steps instead of sampling forwards: forward + backward + AdamW, a SparseDiT
  // running one micro-batch per timestep interval (docs/method.md §4), as `sparsedit train` does.
  bool train = false;
  std::string train_intervals = "stages";  // plan_density_intervals spec
  // Time every ATen op during the timed repetitions (bench/profile.h); the callbacks cost a little,
  // so profiled rows run somewhat slower than unprofiled ones.
  bool profile = false;
  // --train across ranks (--nproc, torchrun): each rank runs its share of the global batch
  // (shard_intervals) and the gradients are summed in 25 MB buckets, as `sparsedit train` does.
  dist::World world;
  // Time the forward's own matrix products alone (bench/gemm_limit.h) to give each sampling row its
  // share of that rate.
  bool gemm_limit = true;
};

struct MeanSd {
  double mean = 0.0;
  double sd = 0.0;  // sample standard deviation over reps; 0 for a single rep
};
MeanSd mean_sd(const std::vector<double>& values);

struct BenchRow {
  std::string mode;  // "sample" (sampling forwards) or "train" (optimisation steps)
  std::string model, family, layout, density, schedule, device, dtype;
  int64_t image_size = 0, input_size = 0, batch = 0;
  int threads = 0;
  bool cfg = false;
  int64_t steps = 0;  // sampling steps of a whole run
  int reps = 0;

  // One entry per distinct sparse grid, most tokens first. Training rows: one per micro-batch, with
  // its sample count in steps_per_side and no per-grid time (the step is timed as a whole).
  std::vector<Grid> grids;
  std::vector<int64_t> steps_per_side;
  std::vector<MeanSd> ms_per_side;     // one forward of the whole (CFG-doubled) batch
  std::vector<double> gmacs_per_side;  // one forward, one sample

  MeanSd ms_per_step;       // sampling: step-weighted mean forward time; training: one step
  std::vector<double> ms_per_step_reps;
  double gmacs = 0.0;       // mean per forward and per sample: the FLOPs counter's mean_gmacs
  double gmacs_per_image_step = 0.0;  // gmacs × 2 with CFG
  // Achieved: 2 · MACs · forward batch / time; training counts forward + backward as 3 forwards.
  MeanSd gflops_per_s;
  // The rate of the same matrix products timed alone (sampling rows with BenchOptions::gemm_limit).
  std::optional<double> gemm_limit_gflops;
  MeanSd img_per_s;         // sampling: batch / (ms_per_step × steps); training: samples / s
  MeanSd steps_per_s;       // training: optimisation steps / s
  int ranks = 1;            // training: data-parallel ranks (step time = the slowest rank's)
  MeanSd comm_share;        // training: time inside collectives / step time, mean over ranks

  // Peak memory while the timed forwards ran, model weights included. CPU: the process's peak
  // resident set (VmHWM, reset through /proc/self/clear_refs just before the run); CUDA: the caching
  // allocator's peak allocated bytes. -1 when unavailable.
  int64_t peak_mem_bytes = -1;
  std::string mem_source;

  // With BenchOptions::profile: self time per op class and the ops that took the most.
  std::vector<OpTime> profile_classes, profile_ops;

  // Against the `full` row of the same group (model, size, batch, threads, device, dtype, CFG).
  std::optional<double> speedup;      // full ms_per_step / this ms_per_step
  std::optional<double> gmacs_ratio;  // this gmacs / full gmacs
};

// Progress messages (one per row); may be empty.
using BenchLog = std::function<void(const std::string&)>;

// Checks every case up front (sizes, densities against the model family, batch, threads) so that a
// bad flag fails before minutes of measuring; then measures in the given order. Throws sdit::Error.
std::vector<BenchRow> run_bench(const BenchModelSource& source, const std::vector<BenchCase>& cases,
                                const BenchOptions& options, const BenchLog& log = {});

// Fills speedup / gmacs_ratio from the `full` row of each group (left empty when there is none).
void attach_speedups(std::vector<BenchRow>& rows);

// Group key of a row: everything but the density (the mode included).
std::string bench_group(const BenchRow& row);

nlohmann::ordered_json bench_row_json(const BenchRow& row);

// ---- shared with bench_train.cpp --------------------------------------------------------------

// One case resolved: the model it runs (family, config, layout) and its density schedule on the
// model's token grid.
struct BenchPlan {
  ModelSpec spec;
  LatentSpec latent;
  Grid dense;
  DensitySchedule sched;
};

// The fields every row shares (model, size, density, batch, threads, device, dtype, ...).
BenchRow bench_row_header(const BenchPlan& plan, const BenchCase& c, const BenchOptions& opt,
                          const std::string& model_name);
// Peak memory bookkeeping around the timed part: reset before, read after (fills the row).
bool bench_reset_peak(const BenchOptions& opt);
void bench_read_peak(BenchRow& row, const BenchOptions& opt, bool per_row);
// The op profile of the timed part, when asked for: started by the constructor, stored by finish().
class BenchProfile {
 public:
  explicit BenchProfile(const BenchOptions& opt);
  void finish(BenchRow& row);

 private:
  std::unique_ptr<OpProfiler> prof_;
};

// The micro-batches of one optimisation step: the schedule's intervals for a SparseDiT, one dense
// interval otherwise. Throws sdit::Error when the batch is smaller than the interval count.
std::vector<DensityInterval> train_intervals(const BenchPlan& plan, const BenchCase& c, const BenchOptions& opt);

// Times warm-up + reps optimisation steps of `model` (left in training mode, weights updated).
BenchRow measure_train_step(Model& model, const BenchPlan& plan, const BenchCase& c, const BenchOptions& opt,
                            const std::string& model_name);

// The family's training init, with small random values where it would put zeros (adaLN-Zero, the
// output layer): timed kernels then see the activations a trained model has, not constants.
void randomize_weights(Model& m);

// Random conditioning of the model's kind for `batch` samples ([cond; uncond] rows with cfg).
Conditioning bench_conditioning(const Model& model, int64_t batch, bool cfg, const torch::Device& device);

std::string dtype_name(torch::Dtype dtype);
// What the numbers were measured on: the CPU model and core count, libtorch's version, and the
// BLAS/oneDNN build (timings from different machines are not comparable; their ratios are).
std::string bench_machine();
torch::Dtype parse_dtype(const std::string& name);  // fp32 | bf16 | fp16

}  // namespace sdit

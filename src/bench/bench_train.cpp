// `sparsedit bench --train`: the wall time of one optimisation step, built from the trainer's own
// step (train/step.h: multi-density micro-batches, training_losses) and AdamW, but on random data,
// so that dense and multi-density SparseDiT training can be compared without a dataset. The
// trainer's EMA update and data loading are left out: both are per-parameter or per-sample copies,
// negligible beside the forward and backward passes being compared.
#include <chrono>
#include <cmath>

#include "bench/bench.h"
#include "diffusion/gaussian_diffusion.h"
#include "models/model.h"
#include "train/optim.h"
#include "train/step.h"
#include "util/compat.h"
#include "util/error.h"

namespace sdit {

std::vector<DensityInterval> train_intervals(const BenchPlan& plan, const BenchCase& c, const BenchOptions& opt) {
  // A dense DiT, or a SparseDiT kept at its dense grid, needs no split: one micro-batch over [0, T).
  if (!plan.spec.sparse() || plan.sched.is_full()) return dense_interval(plan.sched.num_timesteps(), c.batch);
  try {
    return plan_density_intervals(plan.sched, opt.train_intervals, c.batch);
  } catch (const Error& e) {
    fail("bench --train: density '", c.density, "' with batch ", c.batch, ": ", e.what());
  }
}

BenchRow measure_train_step(Model& model, const BenchPlan& plan, const BenchCase& c, const BenchOptions& opt,
                            const std::string& model_name) {
  BenchRow row = bench_row_header(plan, c, opt, model_name);
  row.mode = "train";
  row.steps = 1;
  const auto intervals = train_intervals(plan, c, opt);
  double macs = 0.0;
  for (const auto& iv : intervals) {
    const Grid grid = iv.grid.empty() ? plan.dense : iv.grid;
    const double g = model.flops(plan.dense, grid).gmacs();
    row.grids.push_back(grid);
    row.steps_per_side.push_back(iv.batch);
    row.gmacs_per_side.push_back(g);
    macs += g * static_cast<double>(iv.batch);
  }
  row.gmacs = macs / static_cast<double>(c.batch);  // forward GMACs per sample, batch-weighted
  row.gmacs_per_image_step = row.gmacs;

  DiffusionOptions dopt;
  dopt.learn_sigma = plan.latent.learn_sigma;
  const GaussianDiffusion diffusion(dopt);
  model.train(true);
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& p : model.module().named_parameters())
    if (p.value().requires_grad()) params.emplace_back(p.key(), p.value());
  AdamW adamw(params, AdamWOptions{});

  torch::manual_seed(opt.seed);
  // The diffusion arithmetic stays in float32 as in the trainer; only the model runs in opt.dtype.
  const auto x0 = torch::randn(plan.latent.shape(c.batch, c.input_size, c.input_size));
  const auto cond = bench_conditioning(model, c.batch, false, torch::kCPU);
  StepOptions so;
  so.device = opt.device;
  so.dtype = opt.dtype;

  auto step = [&]() {
    adamw.zero_grad();
    const double loss = accumulate_gradients(model, diffusion, intervals, x0, cond, so).loss;
    adamw.step();
    return loss;
  };

  for (int w = 0; w < opt.warmup; ++w) {
    const double loss = step();
    if (w == 0 && !std::isfinite(loss))
      fail("bench --train: the random model's loss is not finite (", loss, ") in ", row.dtype,
           "; timings of NaN arithmetic would not be representative");
  }
  const bool per_row_peak = bench_reset_peak(opt);
  BenchProfile profile(opt);
  for (int r = 0; r < opt.reps; ++r) {
    compat::cuda_synchronize(opt.device);
    const auto t0 = std::chrono::steady_clock::now();
    step();
    compat::cuda_synchronize(opt.device);
    row.ms_per_step_reps.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  profile.finish(row);
  bench_read_peak(row, opt, per_row_peak);
  model.train(false);

  row.ms_per_step = mean_sd(row.ms_per_step_reps);
  std::vector<double> gflops, ips, sps;
  for (const double ms : row.ms_per_step_reps) {
    const double sec = ms / 1000.0;
    // Backward costs about twice the forward (weight and input gradients), hence 3 forwards.
    gflops.push_back(2.0 * 3.0 * macs / sec);
    ips.push_back(static_cast<double>(c.batch) / sec);
    sps.push_back(1.0 / sec);
  }
  row.gflops_per_s = mean_sd(gflops);
  row.img_per_s = mean_sd(ips);
  row.steps_per_s = mean_sd(sps);
  return row;
}

}  // namespace sdit

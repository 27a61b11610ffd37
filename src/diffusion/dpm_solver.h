#pragma once
// PixArt-α's own DPM-Solver (its diffusion/model/dpm_solver.py through the DPMS wrapper, the
// default sampler of its scripts/inference.py; docs/pixart.md §5.3): DPM-Solver++ (data prediction),
// 2nd-order multistep, time-uniform steps from t = 1 to t = 1/N on the continuous time of the
// discrete VP schedule, the model fed the fractional time (t − 1/N)·1000, the first step and — for
// fewer than 10 steps — the last step of first order, no final denoising. Family-agnostic: it sees
// only eps(x, model time).
//
// The schedule's tables and per-step scalars are float32 tensors computed with the reference's
// torch operations in its order, so a run reproduces it to float rounding of the model itself.
// Not diffusers' DPMSolverMultistepScheduler (integer timesteps, always first order at the end).
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace sdit {

// NoiseScheduleVP('discrete', betas): log ᾱ_k^{1/2} = ½·cumsum(log(1 − β)) (float64), truncated
// where λ < −5.1 (numerical_clip_alpha), stored float32 at the keypoints t_k = (k+1)/N; continuous
// t is the piecewise-linear interpolation through them (extrapolated by the end segments).
class NoiseScheduleVP {
 public:
  explicit NoiseScheduleVP(const std::vector<double>& betas);
  int64_t total_n() const { return total_n_; }
  // Float32 tensors of t's shape.
  torch::Tensor marginal_log_mean_coeff(const torch::Tensor& t) const;
  torch::Tensor marginal_alpha(const torch::Tensor& t) const;
  torch::Tensor marginal_std(const torch::Tensor& t) const;
  torch::Tensor marginal_lambda(const torch::Tensor& t) const;
  // The discrete model's input time (t − 1/N)·1000, float32 (fractional: 874.125, ...).
  torch::Tensor model_time(const torch::Tensor& t) const;

 private:
  int64_t total_n_ = 0;
  torch::Tensor t_array_, log_alpha_array_;  // (K) float32
};

// eps(x, model_time): model_time is (B) float32 on x's device; returns the (guided) noise
// prediction with x's shape.
using EpsFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& model_time)>;

struct DpmSolverOptions {
  int64_t steps = 20;
  int order = 2;                  // 1 or 2 (multistep)
  bool lower_order_final = true;  // below 10 steps the last step is first order
  std::function<void(int64_t step, int64_t total)> on_step;  // after each of the `steps` updates
};

// The continuous times linspace(1, 1/N, steps + 1) (float32), from noise to data.
torch::Tensor dpm_solver_times(const NoiseScheduleVP& ns, int64_t steps);
// The model times the run feeds the model, one per call (`steps` calls).
std::vector<double> dpm_solver_model_times(const NoiseScheduleVP& ns, int64_t steps);

// Runs `steps` model calls from x_T = noise and returns x at t = 1/N. No random numbers are drawn.
torch::Tensor dpm_solver_sample(const NoiseScheduleVP& ns, const EpsFn& eps, const torch::Tensor& noise,
                                const DpmSolverOptions& opt);

}  // namespace sdit

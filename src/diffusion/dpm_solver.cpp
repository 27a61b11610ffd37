#include "diffusion/dpm_solver.h"

#include <algorithm>

#include "util/error.h"

namespace sdit {
namespace {

const auto kF32 = torch::TensorOptions().dtype(torch::kFloat32);

// interpolate_fn of the reference for 1-D x: the segment of the keypoints xp around each x (the
// first or last segment outside them), start_y + (x − start_x)·(end_y − start_y)/(end_x − start_x)
// in float32 tensor ops. A tie with a keypoint takes the segment below it, as the reference's
// sort places x before an equal keypoint.
torch::Tensor interpolate(const torch::Tensor& x_in, const torch::Tensor& xp, const torch::Tensor& yp) {
  const auto x = x_in.to(torch::kCPU, torch::kFloat32).reshape({-1}).contiguous();
  const int64_t K = xp.size(0), n = x.size(0);
  const float* xs = x.data_ptr<float>();
  const float* kp = xp.data_ptr<float>();
  std::vector<int64_t> start(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = std::lower_bound(kp, kp + K, xs[i]) - kp;  // keypoints below x
    start[static_cast<size_t>(i)] = pos == 0 ? 0 : pos == K ? K - 2 : pos - 1;
  }
  const auto s = torch::tensor(start, torch::kLong);
  const auto e = s + 1;
  const auto start_x = xp.index_select(0, s), end_x = xp.index_select(0, e);
  const auto start_y = yp.index_select(0, s), end_y = yp.index_select(0, e);
  return (start_y + (x - start_x) * (end_y - start_y) / (end_x - start_x)).view(x_in.sizes());
}

}  // namespace

NoiseScheduleVP::NoiseScheduleVP(const std::vector<double>& betas) {
  if (betas.size() < 2) fail("DPM-Solver needs a discrete schedule of at least 2 steps");
  auto log_alphas = 0.5 * torch::log(1 - torch::tensor(betas, torch::kDouble)).cumsum(0);
  // numerical_clip_alpha: drop the noisy end where λ = log α − log σ falls below −5.1 (nothing for
  // the linear 1000-step schedule, whose λ(T) = −5.06).
  const auto log_sigmas = 0.5 * torch::log(1. - torch::exp(2. * log_alphas));
  const auto lambdas = log_alphas - log_sigmas;
  const int64_t idx = torch::searchsorted(torch::flip(lambdas, {0}), -5.1).item<int64_t>();
  if (idx > 0) log_alphas = log_alphas.narrow(0, 0, log_alphas.size(0) - idx);
  total_n_ = log_alphas.size(0);
  if (total_n_ < 2) fail("DPM-Solver: the schedule clips to fewer than 2 steps");
  t_array_ = torch::linspace(0., 1., total_n_ + 1, kF32).narrow(0, 1, total_n_).contiguous();
  log_alpha_array_ = log_alphas.to(torch::kFloat32).contiguous();
}

torch::Tensor NoiseScheduleVP::marginal_log_mean_coeff(const torch::Tensor& t) const {
  return interpolate(t, t_array_, log_alpha_array_);
}

torch::Tensor NoiseScheduleVP::marginal_alpha(const torch::Tensor& t) const { return torch::exp(marginal_log_mean_coeff(t)); }

torch::Tensor NoiseScheduleVP::marginal_std(const torch::Tensor& t) const {
  return torch::sqrt(1. - torch::exp(2. * marginal_log_mean_coeff(t)));
}

torch::Tensor NoiseScheduleVP::marginal_lambda(const torch::Tensor& t) const {
  const auto m = marginal_log_mean_coeff(t);
  return m - 0.5 * torch::log(1. - torch::exp(2. * m));
}

torch::Tensor NoiseScheduleVP::model_time(const torch::Tensor& t) const {
  return (t.to(torch::kFloat32) - 1. / static_cast<double>(total_n_)) * 1000.;
}

torch::Tensor dpm_solver_times(const NoiseScheduleVP& ns, int64_t steps) {
  if (steps < 1) fail("DPM-Solver needs at least 1 step, got ", steps);
  return torch::linspace(1.0, 1.0 / static_cast<double>(ns.total_n()), steps + 1, kF32);
}

std::vector<double> dpm_solver_model_times(const NoiseScheduleVP& ns, int64_t steps) {
  const auto times = ns.model_time(dpm_solver_times(ns, steps).narrow(0, 0, steps)).contiguous();
  return std::vector<double>(times.data_ptr<float>(), times.data_ptr<float>() + steps);
}

namespace {

// One solver point: the time (a 1-element float32 tensor on the CPU) and the data prediction there.
struct Point {
  torch::Tensor t, x0;
};

float item(const torch::Tensor& t) { return t.item<float>(); }

}  // namespace

torch::Tensor dpm_solver_sample(const NoiseScheduleVP& ns, const EpsFn& eps, const torch::Tensor& noise,
                                const DpmSolverOptions& opt) {
  if (opt.order != 1 && opt.order != 2) fail("DPM-Solver order must be 1 or 2, got ", opt.order);
  if (opt.steps < opt.order) fail("DPM-Solver multistep needs steps >= order (", opt.steps, " < ", opt.order, ")");
  torch::NoGradGuard ng;
  const auto times = dpm_solver_times(ns, opt.steps);
  // data_prediction_fn: x0 = (x − σ_t·ε) / α_t.
  auto x0_at = [&](const torch::Tensor& x, const torch::Tensor& t) {
    const auto mt = ns.model_time(t).expand({x.size(0)}).to(x.device());
    const auto e = eps(x, mt);
    if (!e.sizes().equals(x.sizes()))
      fail("DPM-Solver: the noise prediction has shape ", shape_str(e.sizes().vec()), " for x of ",
           shape_str(x.sizes().vec()));
    return (x - item(ns.marginal_std(t)) * e) / item(ns.marginal_alpha(t));
  };
  std::vector<Point> prev;
  torch::Tensor x = noise;
  prev.push_back({times.narrow(0, 0, 1), x0_at(x, times.narrow(0, 0, 1))});
  for (int64_t step = 1; step <= opt.steps; ++step) {
    const auto t = times.narrow(0, step, 1);
    int order = step < opt.order ? static_cast<int>(step) : opt.order;
    if (opt.lower_order_final && opt.steps < 10) order = std::min<int>(order, static_cast<int>(opt.steps + 1 - step));
    const auto& p0 = prev.back();
    const auto lambda_t = ns.marginal_lambda(t), lambda_0 = ns.marginal_lambda(p0.t);
    const auto h = lambda_t - lambda_0;
    const auto alpha_phi = torch::exp(ns.marginal_log_mean_coeff(t)) * torch::expm1(-h);  // α_t·φ_1
    const auto ratio = ns.marginal_std(t) / ns.marginal_std(p0.t);                          // σ_t / σ_s
    if (order == 1) {
      x = item(ratio) * x - item(alpha_phi) * p0.x0;
    } else {
      const auto& p1 = prev[prev.size() - 2];
      const auto r0 = (lambda_0 - ns.marginal_lambda(p1.t)) / h;  // h_0 / h
      const auto d1 = item(1. / r0) * (p0.x0 - p1.x0);
      x = item(ratio) * x - item(alpha_phi) * p0.x0 - item(0.5 * alpha_phi) * d1;
    }
    // The model is not evaluated after the last update (NFE = steps).
    if (step < opt.steps) {
      if (static_cast<int>(prev.size()) >= opt.order) prev.erase(prev.begin());
      prev.push_back({t, x0_at(x, t)});
    }
    if (opt.on_step) opt.on_step(step, opt.steps);
  }
  return x;
}

}  // namespace sdit

#include "diffusion/gaussian_diffusion.h"

#include <cmath>

#include "diffusion/respace.h"
#include "util/error.h"

namespace sdit {

std::vector<double> linspace_f64(double start, double end, int64_t n) {
  if (n <= 0) return {};
  std::vector<double> out(static_cast<size_t>(n));
  if (n == 1) {
    out[0] = start;
    return out;
  }
  const double step = (end - start) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) {
    // Kept as a separate rounded product: a fused multiply-add (which compilers may emit on FMA
    // targets) would round once and drift from numpy by an ulp.
    volatile double prod = static_cast<double>(i) * step;
    out[static_cast<size_t>(i)] = prod + start;
  }
  out.back() = end;
  return out;
}

std::vector<double> linear_betas(int64_t num_timesteps) {
  if (num_timesteps <= 0) fail("linear beta schedule: the number of diffusion steps must be positive, got ", num_timesteps);
  const double scale = 1000.0 / static_cast<double>(num_timesteps);
  return linspace_f64(scale * 0.0001, scale * 0.02, num_timesteps);
}

ScheduleTables ScheduleTables::from_betas(const std::vector<double>& betas) {
  const size_t n = betas.size();
  // The learned-range variance needs posterior_variance[1]; a 1-step process has none.
  if (n < 2) fail("a diffusion process needs at least 2 timesteps, got ", n);
  for (size_t i = 0; i < n; ++i)
    if (!(betas[i] > 0.0 && betas[i] <= 1.0)) fail("beta[", i, "] = ", betas[i], " is outside (0, 1]");

  ScheduleTables s;
  s.betas = betas;
  auto make = [n] { return std::vector<double>(n); };
  s.log_betas = make();
  s.alphas_cumprod = make();
  s.alphas_cumprod_prev = make();
  s.alphas_cumprod_next = make();
  s.sqrt_alphas_cumprod = make();
  s.sqrt_one_minus_alphas_cumprod = make();
  s.log_one_minus_alphas_cumprod = make();
  s.sqrt_recip_alphas_cumprod = make();
  s.sqrt_recipm1_alphas_cumprod = make();
  s.posterior_variance = make();
  s.posterior_log_variance_clipped = make();
  s.posterior_mean_coef1 = make();
  s.posterior_mean_coef2 = make();
  s.fixed_large_variance = make();
  s.fixed_large_log_variance = make();

  double acc = 1.0;  // np.cumprod multiplies sequentially
  for (size_t i = 0; i < n; ++i) {
    acc *= 1.0 - betas[i];
    s.alphas_cumprod[i] = acc;
  }
  for (size_t i = 0; i < n; ++i) {
    const double b = betas[i];
    const double ac = s.alphas_cumprod[i];
    const double prev = i == 0 ? 1.0 : s.alphas_cumprod[i - 1];
    s.alphas_cumprod_prev[i] = prev;
    s.alphas_cumprod_next[i] = i + 1 < n ? s.alphas_cumprod[i + 1] : 0.0;
    s.log_betas[i] = std::log(b);
    s.sqrt_alphas_cumprod[i] = std::sqrt(ac);
    s.sqrt_one_minus_alphas_cumprod[i] = std::sqrt(1.0 - ac);
    s.log_one_minus_alphas_cumprod[i] = std::log(1.0 - ac);
    s.sqrt_recip_alphas_cumprod[i] = std::sqrt(1.0 / ac);
    s.sqrt_recipm1_alphas_cumprod[i] = std::sqrt(1.0 / ac - 1.0);
    s.posterior_variance[i] = b * (1.0 - prev) / (1.0 - ac);
    s.posterior_mean_coef1[i] = b * std::sqrt(prev) / (1.0 - ac);
    s.posterior_mean_coef2[i] = (1.0 - prev) * std::sqrt(1.0 - b) / (1.0 - ac);
  }
  // Element 0 of the posterior variance is 0 (log -inf); the reference substitutes element 1.
  for (size_t i = 0; i < n; ++i) {
    const double pv = i == 0 ? s.posterior_variance[1] : s.posterior_variance[i];
    s.posterior_log_variance_clipped[i] = std::log(pv);
    s.fixed_large_variance[i] = i == 0 ? s.posterior_variance[1] : betas[i];
    s.fixed_large_log_variance[i] = std::log(s.fixed_large_variance[i]);
  }
  return s;
}

GaussianDiffusion::GaussianDiffusion(const DiffusionOptions& opt)
    : learn_sigma_(opt.learn_sigma), channel_axis_(opt.channel_axis) {
  if (channel_axis_ < 1) fail("the channel axis must be 1 or later (0 is the batch), got ", channel_axis_);
  if (opt.diffusion_steps < 2) fail("diffusion_steps must be at least 2, got ", opt.diffusion_steps);
  original_ = ScheduleTables::from_betas(linear_betas(opt.diffusion_steps));
  const std::vector<int64_t> keep = space_timesteps(opt.diffusion_steps, opt.respacing);
  // SpacedDiffusion: the kept ᾱ define new betas, so the short process has exactly those ᾱ.
  std::vector<double> new_betas;
  double last = 1.0;
  size_t k = 0;
  for (int64_t i = 0; i < opt.diffusion_steps && k < keep.size(); ++i) {
    if (keep[k] != i) continue;
    const double ac = original_.alphas_cumprod[static_cast<size_t>(i)];
    new_betas.push_back(1.0 - ac / last);
    last = ac;
    timestep_map_.push_back(i);
    ++k;
  }
  if (new_betas.size() < 2)
    fail("timestep respacing '", opt.respacing, "' keeps ", new_betas.size(), " step(s); at least 2 are needed");
  tables_ = ScheduleTables::from_betas(new_betas);
}

torch::Tensor GaussianDiffusion::map_timesteps(const torch::Tensor& t_index) const {
  auto idx = t_index.to(torch::kCPU, torch::kLong).contiguous();
  auto out = torch::empty_like(idx);
  const int64_t* src = idx.data_ptr<int64_t>();
  int64_t* dst = out.data_ptr<int64_t>();
  const int64_t n = num_timesteps();
  for (int64_t i = 0; i < idx.numel(); ++i) {
    if (src[i] < 0 || src[i] >= n) fail("timestep index ", src[i], " is outside [0, ", n, ")");
    dst[i] = timestep_map_[static_cast<size_t>(src[i])];
  }
  return out.to(t_index.device());
}

torch::Tensor GaussianDiffusion::extract(const std::vector<double>& table, const torch::Tensor& t_index,
                                         at::IntArrayRef shape) const {
  auto idx = t_index.to(torch::kCPU, torch::kLong).contiguous();
  if (idx.dim() != 1 || shape.empty() || idx.size(0) != shape[0])
    fail("timesteps must be a 1-D tensor with one entry per batch element (batch ",
         shape.empty() ? 0 : shape[0], "), got ", idx.sizes());
  auto vals = torch::empty({idx.size(0)}, torch::kFloat);
  const int64_t* src = idx.data_ptr<int64_t>();
  float* dst = vals.data_ptr<float>();
  const int64_t n = static_cast<int64_t>(table.size());
  for (int64_t i = 0; i < idx.size(0); ++i) {
    if (src[i] < 0 || src[i] >= n) fail("timestep index ", src[i], " is outside [0, ", n, ")");
    dst[i] = static_cast<float>(table[static_cast<size_t>(src[i])]);  // float64 -> float32, nearest
  }
  std::vector<int64_t> view(shape.size(), 1);
  view[0] = idx.size(0);
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(t_index.device());
  return vals.to(t_index.device()).view(view) + torch::zeros(shape, opts);
}

torch::Tensor GaussianDiffusion::extract(const std::vector<double>& table, int64_t t_index, at::IntArrayRef shape,
                                         const torch::TensorOptions& opts) const {
  if (t_index < 0 || t_index >= static_cast<int64_t>(table.size()))
    fail("timestep index ", t_index, " is outside [0, ", table.size(), ")");
  return torch::full(shape, static_cast<float>(table[static_cast<size_t>(t_index)]), opts.dtype(torch::kFloat));
}

GaussianDiffusion::MeanVar GaussianDiffusion::p_mean_variance(const ModelFn& model, const torch::Tensor& x,
                                                              int64_t t_index, bool clip_denoised) const {
  if (t_index < 0 || t_index >= num_timesteps())
    fail("timestep index ", t_index, " is outside [0, ", num_timesteps(), ")");
  auto t = torch::full({x.size(0)}, t_index, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
  auto out = model(x, map_timesteps(t));
  return p_mean_variance_from_output(out, x, t, clip_denoised);
}

GaussianDiffusion::MeanVar GaussianDiffusion::p_mean_variance_from_output(const torch::Tensor& model_output,
                                                                          const torch::Tensor& x,
                                                                          const torch::Tensor& t,
                                                                          bool clip_denoised) const {
  const int64_t ax = channel_axis_;
  if (x.dim() <= ax) fail("diffusion input must have its channels on axis ", ax, ", got ", x.sizes());
  const int64_t C = x.size(ax);
  const int64_t want = learn_sigma_ ? 2 * C : C;
  if (model_output.dim() != x.dim() || model_output.size(0) != x.size(0) || model_output.size(ax) != want)
    fail("model output ", model_output.sizes(), " does not fit input ", x.sizes(), ": expected ", want,
         " channels on axis ", ax, learn_sigma_ ? " (eps and variance values)" : "");
  MeanVar r;
  if (learn_sigma_) {
    r.eps = model_output.narrow(ax, 0, C);
    auto v = model_output.narrow(ax, C, C);
    auto min_log = extract(tables_.posterior_log_variance_clipped, t, x.sizes());
    auto max_log = extract(tables_.log_betas, t, x.sizes());
    auto frac = (v + 1) / 2;  // v in [-1, 1] interpolates between the two variance bounds
    r.log_variance = frac * max_log + (1 - frac) * min_log;
    r.variance = torch::exp(r.log_variance);
  } else {
    r.eps = model_output;
    r.variance = extract(tables_.fixed_large_variance, t, x.sizes());
    r.log_variance = extract(tables_.fixed_large_log_variance, t, x.sizes());
  }
  r.pred_xstart = predict_xstart_from_eps(x, t, r.eps);
  if (clip_denoised) r.pred_xstart = r.pred_xstart.clamp(-1, 1);
  r.mean = q_posterior(r.pred_xstart, x, t).first;
  return r;
}

torch::Tensor GaussianDiffusion::q_sample(const torch::Tensor& x0, const torch::Tensor& t_index,
                                          const torch::Tensor& noise) const {
  if (!noise.sizes().equals(x0.sizes())) fail("q_sample: noise ", noise.sizes(), " and x0 ", x0.sizes(), " differ");
  return extract(tables_.sqrt_alphas_cumprod, t_index, x0.sizes()) * x0 +
         extract(tables_.sqrt_one_minus_alphas_cumprod, t_index, x0.sizes()) * noise;
}

std::pair<torch::Tensor, torch::Tensor> GaussianDiffusion::q_posterior(const torch::Tensor& x0, const torch::Tensor& x_t,
                                                                       const torch::Tensor& t) const {
  auto mean = extract(tables_.posterior_mean_coef1, t, x_t.sizes()) * x0 +
              extract(tables_.posterior_mean_coef2, t, x_t.sizes()) * x_t;
  return {mean, extract(tables_.posterior_log_variance_clipped, t, x_t.sizes())};
}

torch::Tensor GaussianDiffusion::predict_xstart_from_eps(const torch::Tensor& x_t, const torch::Tensor& t,
                                                         const torch::Tensor& eps) const {
  return extract(tables_.sqrt_recip_alphas_cumprod, t, x_t.sizes()) * x_t -
         extract(tables_.sqrt_recipm1_alphas_cumprod, t, x_t.sizes()) * eps;
}

torch::Tensor GaussianDiffusion::predict_eps_from_xstart(const torch::Tensor& x_t, const torch::Tensor& t,
                                                         const torch::Tensor& x0) const {
  return (extract(tables_.sqrt_recip_alphas_cumprod, t, x_t.sizes()) * x_t - x0) /
         extract(tables_.sqrt_recipm1_alphas_cumprod, t, x_t.sizes());
}

GaussianDiffusion::Losses GaussianDiffusion::training_losses(const ModelFn& model, const torch::Tensor& x0,
                                                             const torch::Tensor& t, const torch::Tensor& noise,
                                                             double min_snr_gamma) const {
  if (min_snr_gamma < 0) fail("min_snr_gamma must be >= 0 (0 disables it), got ", min_snr_gamma);
  auto x_t = q_sample(x0, t, noise);
  auto out = model(x_t, map_timesteps(t));
  const int64_t ax = channel_axis_;
  if (x0.dim() <= ax) fail("diffusion input must have its channels on axis ", ax, ", got ", x0.sizes());
  const int64_t C = x0.size(ax);
  Losses L;
  torch::Tensor eps;
  if (learn_sigma_) {
    if (out.dim() != x0.dim() || out.size(ax) != 2 * C)
      fail("model output ", out.sizes(), " does not fit input ", x0.sizes(), ": expected ", 2 * C,
           " channels on axis ", ax);
    eps = out.narrow(ax, 0, C);
    // The vb term trains only the variance: the mean it sees is detached.
    auto frozen = torch::cat({eps.detach(), out.narrow(ax, C, C)}, ax);
    auto [true_mean, true_log_var] = q_posterior(x0, x_t, t);
    auto p = p_mean_variance_from_output(frozen, x_t, t, false);
    auto kl = mean_flat(normal_kl(true_mean, true_log_var, p.mean, p.log_variance)) / std::log(2.0);
    auto nll = mean_flat(-discretized_gaussian_log_likelihood(x0, p.mean, 0.5 * p.log_variance)) / std::log(2.0);
    L.vb = torch::where(t.to(kl.device()) == 0, nll, kl);
  } else {
    if (!out.sizes().equals(x0.sizes())) fail("model output ", out.sizes(), " does not match input ", x0.sizes());
    eps = out;
  }
  L.mse = mean_flat(torch::pow(noise - eps, 2));
  if (min_snr_gamma > 0) {
    auto shape = t.sizes();
    auto snr = torch::pow(extract(tables_.sqrt_alphas_cumprod, t, shape) /
                              extract(tables_.sqrt_one_minus_alphas_cumprod, t, shape), 2);
    auto weight = torch::minimum(snr, torch::full_like(snr, min_snr_gamma)) / snr;
    L.mse = weight * L.mse;
  }
  L.loss = learn_sigma_ ? L.mse + L.vb : L.mse;
  if (!learn_sigma_) L.vb = torch::zeros_like(L.mse);
  return L;
}

torch::Tensor normal_kl(const torch::Tensor& mean1, const torch::Tensor& logvar1, const torch::Tensor& mean2,
                        const torch::Tensor& logvar2) {
  return 0.5 * (-1.0 + logvar2 - logvar1 + torch::exp(logvar1 - logvar2) +
                torch::pow(mean1 - mean2, 2) * torch::exp(-logvar2));
}

torch::Tensor approx_standard_normal_cdf(const torch::Tensor& x) {
  const double c = std::sqrt(2.0 / M_PI);
  return 0.5 * (1.0 + torch::tanh(c * (x + 0.044715 * torch::pow(x, 3))));
}

torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x, const torch::Tensor& means,
                                                  const torch::Tensor& log_scales) {
  if (!x.sizes().equals(means.sizes()) || !x.sizes().equals(log_scales.sizes()))
    fail("discretized_gaussian_log_likelihood: shapes differ: ", x.sizes(), ", ", means.sizes(), ", ",
         log_scales.sizes());
  auto centered = x - means;
  auto inv_stdv = torch::exp(-log_scales);
  auto cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0));
  auto cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0));
  auto log_cdf_plus = torch::log(cdf_plus.clamp(1e-12));
  auto log_one_minus_cdf_min = torch::log((1.0 - cdf_min).clamp(1e-12));
  auto cdf_delta = cdf_plus - cdf_min;
  // The bins were designed for 8-bit pixels in [-1, 1]; the edge bins extend to ±infinity.
  return torch::where(x < -0.999, log_cdf_plus,
                      torch::where(x > 0.999, log_one_minus_cdf_min, torch::log(cdf_delta.clamp(1e-12))));
}

torch::Tensor mean_flat(const torch::Tensor& t) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < t.dim(); ++d) dims.push_back(d);
  if (dims.empty()) return t;
  return t.mean(dims);
}

}  // namespace sdit

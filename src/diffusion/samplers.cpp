#include "diffusion/samplers.h"

#include <cmath>

#include "util/compat.h"
#include "util/error.h"

namespace sdit {

namespace {

torch::Tensor batch_t(const torch::Tensor& x, int64_t t_index) {
  return torch::full({x.size(0)}, t_index, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
}

// (t != 0) as float, shaped to broadcast over the non-batch dims, like the reference's mask.
torch::Tensor nonzero_mask(const torch::Tensor& t, const torch::Tensor& x) {
  std::vector<int64_t> view(static_cast<size_t>(x.dim()), 1);
  view[0] = -1;
  return (t != 0).to(torch::kFloat).view(view);
}

// DPM-Solver++(2M) on the respaced timesteps s_0 > s_1 > ... > s_{K-1} (original indices).
// Each point costs one model call giving the data prediction x0_k; the update s_k -> s_{k+1} is
//   x <- (σ_{k+1}/σ_k) x + α_{k+1} (1 − e^{−h}) D,   h = λ_{k+1} − λ_k,  λ = log(α/σ),
// with D = x0_k on the first and on the last update (first order) and otherwise the multistep
// second-order combination D = (1 + 1/(2r)) x0_k − 1/(2r) x0_{k−1}, r = h_{k−1}/h.
// α, σ, λ come from the original process's ᾱ at the original timesteps, so the respaced betas
// never enter. The result is the x0 prediction at the last point (t = 0 for every respacing).
// The coefficients are formed in double and rounded to float32 once per step.
torch::Tensor dpm_solver_pp_2m(const GaussianDiffusion& d, const ModelFn& model, const torch::Tensor& noise,
                               const SampleOptions& opt) {
  const auto& map = d.timestep_map();
  const auto& orig = d.original_tables();
  const int64_t K = static_cast<int64_t>(map.size());
  const int64_t ax = d.channel_axis();
  if (noise.dim() <= ax) fail("dpm++2m: noise ", noise.sizes(), " has no channel axis ", ax);
  const int64_t C = noise.size(ax);
  auto at = [&](const std::vector<double>& table, int64_t k) { return table[static_cast<size_t>(map[k])]; };
  auto lambda = [&](int64_t k) {
    return std::log(at(orig.sqrt_alphas_cumprod, k)) - std::log(at(orig.sqrt_one_minus_alphas_cumprod, k));
  };
  auto fopts = torch::TensorOptions().dtype(torch::kFloat).device(noise.device());

  torch::Tensor x = noise;
  torch::Tensor prev_x0;
  double prev_h = 0.0;
  for (int64_t k = K - 1, step = 0; k >= 0; --k, ++step) {
    const int64_t t = map[static_cast<size_t>(k)];
    auto out = model(x, batch_t(x, t));
    if (out.dim() != x.dim() || out.size(0) != x.size(0) || out.size(ax) < C)
      fail("model output ", out.sizes(), " does not fit input ", x.sizes());
    auto eps = out.narrow(ax, 0, C);
    auto x0 = d.extract(orig.sqrt_recip_alphas_cumprod, t, x.sizes(), fopts) * x -
              d.extract(orig.sqrt_recipm1_alphas_cumprod, t, x.sizes(), fopts) * eps;
    if (opt.clip_denoised) x0 = x0.clamp(-1, 1);
    if (k == 0) {
      x = x0;
    } else {
      const double h = lambda(k - 1) - lambda(k);
      const double ratio = at(orig.sqrt_one_minus_alphas_cumprod, k - 1) / at(orig.sqrt_one_minus_alphas_cumprod, k);
      const double phi = -at(orig.sqrt_alphas_cumprod, k - 1) * std::expm1(-h);
      const bool first_order = step == 0 || k == 1;
      if (first_order) {
        x = static_cast<float>(ratio) * x + static_cast<float>(phi) * x0;
      } else {
        const double half_inv_r = h / (2.0 * prev_h);  // 1 / (2r)
        x = static_cast<float>(ratio) * x + static_cast<float>(phi * (1.0 + half_inv_r)) * x0 -
            static_cast<float>(phi * half_inv_r) * prev_x0;
      }
      prev_x0 = x0;
      prev_h = h;
    }
    if (opt.on_step) opt.on_step(step + 1, K);
  }
  return x;
}

}  // namespace

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> names = {"ddpm", "ddim", "dpm++2m"};
  return names;
}

torch::Tensor ddpm_step(const GaussianDiffusion& d, const ModelFn& model, const torch::Tensor& x, int64_t t_index,
                        bool clip_denoised, const torch::Tensor& noise_in) {
  auto out = d.p_mean_variance(model, x, t_index, clip_denoised);
  auto noise = noise_in.defined() ? noise_in : torch::randn_like(x);
  auto t = batch_t(x, t_index);
  return out.mean + nonzero_mask(t, x) * torch::exp(0.5 * out.log_variance) * noise;
}

torch::Tensor ddim_step(const GaussianDiffusion& d, const ModelFn& model, const torch::Tensor& x, int64_t t_index,
                        double eta, bool clip_denoised, const torch::Tensor& noise_in) {
  auto out = d.p_mean_variance(model, x, t_index, clip_denoised);
  auto t = batch_t(x, t_index);
  // eps is re-derived from the (possibly clipped) x0, as the reference does.
  auto eps = d.predict_eps_from_xstart(x, t, out.pred_xstart);
  const auto& tb = d.tables();
  auto alpha_bar = d.extract(tb.alphas_cumprod, t, x.sizes());
  auto alpha_bar_prev = d.extract(tb.alphas_cumprod_prev, t, x.sizes());
  auto sigma = eta * torch::sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch::sqrt(1 - alpha_bar / alpha_bar_prev);
  auto noise = noise_in.defined() ? noise_in : torch::randn_like(x);
  auto mean_pred = out.pred_xstart * torch::sqrt(alpha_bar_prev) + torch::sqrt(1 - alpha_bar_prev - torch::pow(sigma, 2)) * eps;
  return mean_pred + nonzero_mask(t, x) * sigma * noise;
}

torch::Tensor sample_loop(const GaussianDiffusion& d, const ModelFn& model, const torch::Tensor& noise,
                          const SampleOptions& opt) {
  if (opt.sampler != "ddpm" && opt.sampler != "ddim" && opt.sampler != "dpm++2m")
    fail("unknown sampler '", opt.sampler, "' (choose ddpm, ddim or dpm++2m)");
  if (noise.dim() < 2) fail("sample_loop: noise must be (B, C, ...), got ", noise.sizes());
  if (opt.sampler == "ddim" && !(opt.eta >= 0.0)) fail("ddim eta must be >= 0, got ", opt.eta);
  torch::NoGradGuard no_grad;
  if (opt.sampler == "dpm++2m") return dpm_solver_pp_2m(d, model, noise, opt);

  const int64_t total = d.num_timesteps();
  torch::Tensor x = noise;
  for (int64_t i = total - 1, step = 1; i >= 0; --i, ++step) {
    // Keyed noise is skipped where it would be multiplied by zero (DDIM with eta 0).
    const bool needs_noise = opt.noise && (opt.sampler == "ddpm" || opt.eta > 0);
    const torch::Tensor noise = needs_noise ? opt.noise(x, step) : opt.noise ? torch::zeros_like(x) : torch::Tensor();
    x = opt.sampler == "ddpm" ? ddpm_step(d, model, x, i, opt.clip_denoised, noise)
                              : ddim_step(d, model, x, i, opt.eta, opt.clip_denoised, noise);
    if (opt.on_step) opt.on_step(step, total);
  }
  return x;
}

}  // namespace sdit

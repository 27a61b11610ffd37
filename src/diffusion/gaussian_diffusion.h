#pragma once
// The Gaussian diffusion of DiT (guided-diffusion/IDDPM code): linear betas, eps prediction,
// learned-range variance, respacing. Built to reproduce the Python reference bit for bit on CPU:
// every schedule table is float64 like numpy's, each per-step coefficient is gathered in double
// and rounded to float32 (the reference's _extract_into_tensor), and the float32 elementwise ops
// follow the reference's operation order.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sdit {

// (x, original timesteps (B) int64) -> (B, 2C, H, W) [eps | v] with learned sigma, (B, C, H, W)
// eps otherwise (the channels on DiffusionOptions::channel_axis). Conditioning (labels, guidance) is closed over by the caller.
using ModelFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t_original)>;

struct DiffusionOptions {
  int64_t diffusion_steps = 1000;
  std::string respacing = "";  // see space_timesteps
  bool learn_sigma = true;     // false: fixed-large variance (DiT's create_diffusion), no vb loss
  // The axis of x holding the channels (and of the model output holding [eps | v]): 1 for
  // (B, C, ...), 2 for Latte's frames-first (B, F, C, H, W), whose diffusion copy splits on dim 2.
  int64_t channel_axis = 1;
};

// numpy.linspace(start, end, n) in float64: start + i * ((end - start) / (n - 1)), last = end.
std::vector<double> linspace_f64(double start, double end, int64_t n);
// get_named_beta_schedule("linear", T): endpoints 1e-4 and 0.02 scaled by 1000 / T.
std::vector<double> linear_betas(int64_t num_timesteps);

// Every float64 array GaussianDiffusion.__init__ builds from the betas, same names, same formulas.
struct ScheduleTables {
  std::vector<double> betas, log_betas, alphas_cumprod, alphas_cumprod_prev, alphas_cumprod_next,
      sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod, log_one_minus_alphas_cumprod,
      sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod, posterior_variance,
      posterior_log_variance_clipped, posterior_mean_coef1, posterior_mean_coef2,
      fixed_large_variance, fixed_large_log_variance;
  int64_t size() const { return static_cast<int64_t>(betas.size()); }
  static ScheduleTables from_betas(const std::vector<double>& betas);
};

class GaussianDiffusion {
 public:
  explicit GaussianDiffusion(const DiffusionOptions& opt);

  int64_t num_timesteps() const { return tables_.size(); }
  int64_t original_num_timesteps() const { return original_.size(); }
  bool learn_sigma() const { return learn_sigma_; }
  int64_t channel_axis() const { return channel_axis_; }
  const std::vector<int64_t>& timestep_map() const { return timestep_map_; }  // respaced -> original
  const ScheduleTables& tables() const { return tables_; }             // the respaced process
  const ScheduleTables& original_tables() const { return original_; }  // the base T-step process

  // Original timesteps (B, int64) for respaced indices, on t_index's device.
  torch::Tensor map_timesteps(const torch::Tensor& t_index) const;
  // _extract_into_tensor: table[t] gathered in double, rounded to float32, broadcast to `shape`.
  torch::Tensor extract(const std::vector<double>& table, const torch::Tensor& t_index,
                        at::IntArrayRef shape) const;
  torch::Tensor extract(const std::vector<double>& table, int64_t t_index, at::IntArrayRef shape,
                        const torch::TensorOptions& opts) const;

  struct MeanVar {
    torch::Tensor mean, variance, log_variance, pred_xstart, eps;
  };
  // One model call at respaced index t_index (the model sees timestep_map[t_index]).
  MeanVar p_mean_variance(const ModelFn& model, const torch::Tensor& x, int64_t t_index,
                          bool clip_denoised = false) const;
  // The same from an already computed model output and per-sample respaced indices.
  MeanVar p_mean_variance_from_output(const torch::Tensor& model_output, const torch::Tensor& x,
                                      const torch::Tensor& t_index, bool clip_denoised = false) const;

  torch::Tensor q_sample(const torch::Tensor& x0, const torch::Tensor& t_index, const torch::Tensor& noise) const;
  // q(x_{t-1} | x_t, x_0): mean and clipped log variance.
  std::pair<torch::Tensor, torch::Tensor> q_posterior(const torch::Tensor& x0, const torch::Tensor& x_t,
                                                      const torch::Tensor& t_index) const;
  torch::Tensor predict_xstart_from_eps(const torch::Tensor& x_t, const torch::Tensor& t_index,
                                        const torch::Tensor& eps) const;
  torch::Tensor predict_eps_from_xstart(const torch::Tensor& x_t, const torch::Tensor& t_index,
                                        const torch::Tensor& x0) const;

  struct Losses {
    torch::Tensor loss, mse, vb;  // per sample (B); vb is zeros without learned sigma
  };
  // LossType.MSE of the reference: loss = mse + vb (vb not rescaled; decoder NLL where t == 0).
  // min_snr_gamma > 0 weights the mse by min(SNR, gamma) / SNR, SNR = ᾱ_t / (1 − ᾱ_t), computed
  // in float32 as the SparseDiT authors' copy does (they use gamma 5); vb stays unweighted.
  Losses training_losses(const ModelFn& model, const torch::Tensor& x0, const torch::Tensor& t_index,
                         const torch::Tensor& noise, double min_snr_gamma = 0.0) const;

 private:
  ScheduleTables original_;
  ScheduleTables tables_;
  std::vector<int64_t> timestep_map_;
  bool learn_sigma_ = true;
  int64_t channel_axis_ = 1;
};

// diffusion_utils.py, float32 in the reference's op order.
torch::Tensor normal_kl(const torch::Tensor& mean1, const torch::Tensor& logvar1, const torch::Tensor& mean2,
                        const torch::Tensor& logvar2);
torch::Tensor approx_standard_normal_cdf(const torch::Tensor& x);
torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x, const torch::Tensor& means,
                                                  const torch::Tensor& log_scales);
torch::Tensor mean_flat(const torch::Tensor& t);

}  // namespace sdit

#include "train/step.h"

namespace sdit {

GaussianDiffusion::Losses batch_losses(Model& model, const GaussianDiffusion& diffusion, const torch::Tensor& x0,
                                       const torch::Tensor& t, const Conditioning& cond, const torch::Tensor& noise,
                                       const Grid& sparse, double min_snr_gamma) {
  const auto dtype = model.module().parameters().empty() ? torch::kFloat32
                                                         : model.module().parameters().front().scalar_type();
  ModelFn fn = [&](const torch::Tensor& x, const torch::Tensor& t_orig) {
    if (dtype == torch::kFloat32) return model.forward(x, t_orig, cond, sparse);
    return model.forward(x.to(dtype), t_orig, cond, sparse).to(torch::kFloat32);
  };
  return diffusion.training_losses(fn, x0, t, noise, min_snr_gamma);
}

StepLosses accumulate_gradients(Model& model, const GaussianDiffusion& diffusion,
                                const std::vector<DensityInterval>& intervals, const torch::Tensor& x0,
                                const Conditioning& cond, const StepOptions& opt) {
  StepLosses out;
  int64_t offset = 0;
  for (size_t k = 0; k < intervals.size(); ++k) {
    const auto& iv = intervals[k];
    const auto xb = x0.narrow(0, offset, iv.batch);
    const auto cb = cond.empty() ? Conditioning{} : cond.narrow(offset, iv.batch);
    offset += iv.batch;
    MicroBatch mb;
    mb.interval = k;
    mb.iv = &iv;
    mb.t = torch::randint(iv.t_begin, iv.t_end, {iv.batch}, torch::kLong);
    const auto noise = torch::randn_like(xb);
    if (opt.before_forward) opt.before_forward(mb);
    auto L = batch_losses(model, diffusion, xb.to(opt.device), mb.t.to(opt.device), cb.to(opt.device),
                          noise.to(opt.device), iv.grid, opt.min_snr_gamma);
    auto weighted = L.loss.mean() * iv.weight;
    mb.weighted_loss = weighted.item<double>();
    if (opt.before_backward) opt.before_backward(mb);
    weighted.backward();
    out.loss += mb.weighted_loss;
    out.mse += L.mse.mean().item<double>() * iv.weight;
    out.vb += L.vb.mean().item<double>() * iv.weight;
  }
  return out;
}

}  // namespace sdit

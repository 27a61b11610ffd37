#include "train/step.h"

#include "models/layers.h"
#include "util/keyed_rng.h"

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

double take_label_dropout(Model& model) {
  double p = 0.0;
  for (const auto& m : model.module().modules(/*include_self=*/true))
    if (auto* le = m->as<LabelEmbedderImpl>()) {
      le->external_dropout = true;
      p = le->dropout_prob;
    }
  return p;
}

namespace {

// Replaces the labels of the rows whose coin fell below p by the model's null class.
Conditioning drop_labels(Model& model, const Conditioning& cond, const torch::Tensor& coins, double p) {
  if (p <= 0 || !cond.labels.defined()) return cond;
  Conditioning out = cond;
  out.labels = torch::where(coins < p, model.null_conditioning(cond).labels, cond.labels);
  return out;
}

std::vector<int64_t> per_sample_shape(const torch::Tensor& x) {
  return std::vector<int64_t>(x.sizes().begin() + 1, x.sizes().end());
}

}  // namespace

StepLosses accumulate_gradients(Model& model, const GaussianDiffusion& diffusion,
                                const std::vector<DensityInterval>& intervals, const torch::Tensor& x0,
                                const Conditioning& cond, const StepOptions& opt) {
  const auto segments = opt.segments.empty() ? shard_intervals(intervals, 0, 1) : opt.segments;
  const KeyedDraws draws(opt.seed, static_cast<uint64_t>(opt.step));
  StepLosses out;
  int64_t offset = 0;
  for (const auto& seg : segments) {
    const auto& iv = intervals.at(seg.interval);
    const auto xb = x0.narrow(0, offset, seg.count);
    const auto ids = sample_range(seg.position, seg.count);
    auto cb = cond.empty() ? Conditioning{} : cond.narrow(offset, seg.count);
    offset += seg.count;
    MicroBatch mb;
    mb.interval = seg.interval;
    mb.iv = &iv;
    mb.segment = &seg;
    mb.t = draws.randint(RngStream::Timestep, ids, iv.t_begin, iv.t_end);
    const auto noise = draws.randn(RngStream::Noise, ids, per_sample_shape(xb));
    if (opt.label_dropout > 0) cb = drop_labels(model, cb, draws.rand(RngStream::LabelDrop, ids), opt.label_dropout);
    if (opt.before_forward) opt.before_forward(mb);
    auto L = batch_losses(model, diffusion, xb.to(opt.device), mb.t.to(opt.device), cb.to(opt.device),
                          noise.to(opt.device), iv.grid, opt.min_snr_gamma);
    // Per-sample weight w_k / n_k, n_k the interval's GLOBAL size: summing over ranks needs no /W.
    const double w = iv.weight / static_cast<double>(iv.batch);
    auto weighted = L.loss.sum() * w;
    mb.weighted_loss = weighted.item<double>();
    if (opt.before_backward) opt.before_backward(mb);
    weighted.backward();
    out.loss += mb.weighted_loss;
    out.mse += L.mse.sum().item<double>() * w;
    out.vb += L.vb.sum().item<double>() * w;
  }
  return out;
}

}  // namespace sdit

#include "train/optim.h"

#include <cmath>
#include <set>

#include "util/error.h"

namespace sdit {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions opt)
    : params_(std::move(params)), state_(params_.size()), opt_(opt) {
  if (!(opt.lr >= 0)) fail("learning rate must be >= 0, got ", opt.lr);
  if (!(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1))
    fail("AdamW betas must lie in [0, 1), got ", opt.beta1, ", ", opt.beta2);
  if (!(opt.eps >= 0)) fail("AdamW eps must be >= 0, got ", opt.eps);
  if (!(opt.weight_decay >= 0)) fail("weight decay must be >= 0, got ", opt.weight_decay);
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
}

void AdamW::step() {
  torch::NoGradGuard ng;
  const double lr = opt_.lr, b1 = opt_.beta1, b2 = opt_.beta2;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    const auto& g = p.grad();
    if (!g.defined()) continue;
    auto& s = state_[i];
    if (!s.exp_avg.defined()) {
      s.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      s.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    }
    s.step += 1;
    // The operation order and the double-precision scalars of PyTorch 1.13's _single_tensor_adamw,
    // so the float32 roundings agree.
    p.mul_(1.0 - lr * opt_.weight_decay);
    s.exp_avg.mul_(b1).add_(g, 1.0 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(g, g, 1.0 - b2);
    const double step = static_cast<double>(s.step);
    const double bc1 = 1.0 - std::pow(b1, step);
    const double bc2 = 1.0 - std::pow(b2, step);
    const double step_size = lr / bc1;
    const double bc2_sqrt = std::sqrt(bc2);
    auto denom = (s.exp_avg_sq.sqrt() / bc2_sqrt).add_(opt_.eps);
    p.addcdiv_(s.exp_avg, denom, -step_size);
  }
}

void AdamW::save(StateDict& sd, const std::string& prefix) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& s = state_[i];
    if (!s.exp_avg.defined()) continue;
    const auto& name = params_[i].first;
    sd.set(prefix + "exp_avg." + name, s.exp_avg.detach().to(torch::kCPU).contiguous());
    sd.set(prefix + "exp_avg_sq." + name, s.exp_avg_sq.detach().to(torch::kCPU).contiguous());
    sd.set(prefix + "step." + name, torch::full({1}, s.step, torch::kLong));
  }
}

void AdamW::load(const StateDict& sd, const std::string& prefix) {
  std::set<std::string> known;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    const std::string ka = prefix + "exp_avg." + name, kb = prefix + "exp_avg_sq." + name, ks = prefix + "step." + name;
    known.insert(ka), known.insert(kb), known.insert(ks);
    const torch::Tensor *a = sd.find(ka), *b = sd.find(kb), *st = sd.find(ks);
    auto& s = state_[i];
    if (!a && !b && !st) {
      s = State{};
      continue;
    }
    if (!a || !b || !st) fail("optimizer state of '", name, "' is incomplete (needs ", ka, ", ", kb, ", ", ks, ")");
    for (const auto* t : {a, b})
      if (!t->sizes().equals(p.sizes()))
        fail("optimizer state for '", name, "' has shape ", shape_str(t->sizes().vec()), ", the parameter ",
             shape_str(p.sizes().vec()));
    if (st->numel() != 1 || st->scalar_type() != torch::kLong || st->item<int64_t>() < 1)
      fail("optimizer step count '", ks, "' must be one positive int64");
    s.exp_avg = a->to(p.options(), /*non_blocking=*/false, /*copy=*/true).contiguous();
    s.exp_avg_sq = b->to(p.options(), false, true).contiguous();
    s.step = st->item<int64_t>();
  }
  for (const auto& k : sd.keys())
    if (k.rfind(prefix, 0) == 0 && !known.count(k))
      fail("optimizer state '", k, "' belongs to no trainable parameter of this model");
}

void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay) {
  torch::NoGradGuard ng;
  auto src = model.named_parameters(/*recurse=*/true);
  auto dst = ema.named_parameters(true);
  if (src.size() != dst.size()) fail("EMA and model have different parameter counts");
  for (auto& item : src) {
    auto* e = dst.find(item.key());
    if (!e || !e->sizes().equals(item.value().sizes())) fail("EMA lacks parameter '", item.key(), "'");
    e->mul_(decay).add_(item.value().detach(), 1.0 - decay);
  }
}

double clip_grad_norm(const std::vector<std::pair<std::string, torch::Tensor>>& params, double max_norm) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> grads, norms;
  for (const auto& [name, p] : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  for (auto& g : grads) norms.push_back(g.norm(2));
  auto total = torch::stack(norms).norm(2);
  if (max_norm > 0) {
    // As torch.nn.utils.clip_grad_norm_: always multiply by the clamped coefficient (1 is exact).
    auto coef = torch::clamp_max(max_norm / (total + 1e-6), 1.0);
    for (auto& g : grads) g.mul_(coef.to(g.device()));
  }
  return total.item<double>();
}

}  // namespace sdit

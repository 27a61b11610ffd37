#pragma once
// The optimiser side of DiT's train.py, written out so every piece of state can go into a
// checkpoint and come back bit for bit: AdamW (torch.optim.AdamW's single-tensor update), the EMA
// of the weights, and gradient-norm clipping.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "io/state_dict.h"

namespace sdit {

struct AdamWOptions {
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled: p -= lr·wd·p before the Adam update
};

class AdamW {
 public:
  // params: the trainable tensors (requires_grad) under their state-dict names.
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions opt);

  // Drops the gradients (set_to_none), so the next backward writes them afresh.
  void zero_grad();
  // One update of every parameter that has a gradient; parameters without one keep their state,
  // as in PyTorch (each parameter counts its own steps).
  void step();

  const AdamWOptions& options() const { return opt_; }
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }
  int64_t step_count(size_t i) const { return state_.at(i).step; }

  // prefix + "exp_avg.<name>", "exp_avg_sq.<name>" (CPU copies) and "step.<name>" (I64, shape [1]);
  // parameters that never had a gradient write nothing.
  void save(StateDict& sd, const std::string& prefix) const;
  // Restores what save wrote (to each parameter's device); throws sdit::Error naming the tensor
  // when a moment is partly missing or mis-shaped, or the file holds state for unknown parameters.
  void load(const StateDict& sd, const std::string& prefix);

 private:
  struct State {
    torch::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<State> state_;
  AdamWOptions opt_;
};

// ema ← decay·ema + (1 − decay)·model over every named parameter, pos_embed included (train.py's
// update_ema); decay 0 copies. Both modules must have the same parameter names and shapes.
void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay);

// torch.nn.utils.clip_grad_norm_ (2-norm over all gradients, scale by max_norm / (norm + 1e-6)
// when that is below 1). Returns the norm before clipping; max_norm <= 0 only measures.
double clip_grad_norm(const std::vector<std::pair<std::string, torch::Tensor>>& params, double max_norm);

}  // namespace sdit

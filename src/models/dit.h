#pragma once
// The dense DiT of Peebles & Xie (models.py); module names are the official state-dict names.
#include <torch/torch.h>

#include "models/config.h"
#include "models/layers.h"

namespace sdit {

// adaLN-Zero block: x += g1·Attn(mod(LN x)); x += g2·MLP(mod(LN x)).
class DiTBlockImpl : public AdaLNBlockImpl {
 public:
  DiTBlockImpl(int64_t hidden, int64_t heads, double mlp_ratio);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c);
  SelfAttention attn{nullptr};
};
TORCH_MODULE(DiTBlock);

// Embedders and output head shared by the dense DiT and the SparseDiT (same keys in both).
class DiTStemImpl : public torch::nn::Module {
 public:
  explicit DiTStemImpl(const DiTConfig& cfg);
  const DiTConfig& config() const { return cfg_; }

 protected:
  // Registers pos_embed, x_embedder, t_embedder, y_embedder (in the reference's order).
  void register_stem();
  void register_head();  // final_layer, registered after the blocks as in models.py
  // Tokens with positional embedding, and the conditioning vector c = t_emb + y_emb.
  std::pair<torch::Tensor, torch::Tensor> embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y);
  torch::Tensor head(const torch::Tensor& tokens, const torch::Tensor& c);
  void check_inputs(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) const;

 public:
  torch::Tensor pos_embed;
  PatchEmbed x_embedder{nullptr};
  TimestepEmbedder t_embedder{nullptr};
  LabelEmbedder y_embedder{nullptr};
  FinalLayer final_layer{nullptr};

 protected:
  DiTConfig cfg_;
};

class DiTImpl : public DiTStemImpl {
 public:
  explicit DiTImpl(const DiTConfig& cfg);
  // x (B, C, I, I), t (B) int64 original timesteps, y (B) int64 labels (num_classes = null class).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y);
  torch::nn::ModuleList blocks{nullptr};
};
TORCH_MODULE(DiT);

// The DiT training init (xavier linears, zeroed adaLN and output layers, sin-cos pos_embed) for
// models built from scratch. Draws from the global torch generator.
void initialize_dit_weights(torch::nn::Module& model, const DiTConfig& cfg);

}  // namespace sdit

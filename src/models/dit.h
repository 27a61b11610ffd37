#pragma once
// The DiT family (Peebles & Xie, models.py): class-conditional, adaLN-Zero blocks, fixed square
// input. Dense keys are the official state-dict names; the SparseDiT of a DiT keeps the embedders
// and head and takes the authors' trunk names (models/trunk.h).
#include <torch/torch.h>

#include <optional>
#include <string>

#include "io/state_dict.h"
#include "models/backbone.h"
#include "models/layers.h"
#include "models/registry.h"
#include "models/trunk.h"

namespace sdit {

struct DiTConfig {
  int64_t input_size = 32;  // latent side (image / 8), or pixel side for pixel-space models
  int64_t patch_size = 2;
  int64_t in_channels = 4;
  int64_t hidden_size = 1152;
  int64_t depth = 28;
  int64_t num_heads = 16;
  int64_t num_classes = 1000;
  bool learn_sigma = true;
  double mlp_ratio = 4.0;

  int64_t out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  int64_t grid() const { return input_size / patch_size; }  // H = W of the dense token grid
  int64_t tokens() const { return grid() * grid(); }
  nlohmann::json to_json() const;
  // Strict: every field present must have the right type; missing fields keep their defaults.
  static DiTConfig from_json(const nlohmann::json& j);
  void validate() const;  // throws on sizes the network cannot be built with
};

// Published configs "DiT-XL/2" etc. (input_size stays 32); throws on unknown names.
DiTConfig dit_preset(const std::string& name);
// 384->6, 768->12, 1024->16, 1152->16; nullopt otherwise (the caller must then ask for --num-heads).
std::optional<int64_t> default_heads(int64_t hidden_size);

class DiTImpl : public torch::nn::Module {
 public:
  DiTImpl(const DiTConfig& cfg, std::optional<SparseLayout> layout = std::nullopt);
  // x (B, C, I, I), t (B) original timesteps, y (B) int64 labels (num_classes = the null class);
  // sparse: the grid a SparseDiT's SDTMs pool to (empty = dense; ignored by a dense DiT).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                        const Grid& sparse = {});
  const DiTConfig& config() const { return cfg_; }
  const Trunk& trunk() const { return trunk_; }

  torch::Tensor pos_embed;
  PatchEmbed x_embedder{nullptr};
  TimestepEmbedder t_embedder{nullptr};
  LabelEmbedder y_embedder{nullptr};
  FinalLayer final_layer{nullptr};

 private:
  DiTConfig cfg_;
  Trunk trunk_;
};
TORCH_MODULE(DiT);

// The DiT training init (xavier linears, zeroed adaLN and output layers, sin-cos pos_embed) for
// models built from scratch; a SparseDiT's merge layers start as W1 = 0, W2 = I. Draws from the
// global torch generator.
void initialize_dit_weights(DiTImpl& model);
// The part of it every family built of DiT's pieces shares (Latte): xavier linears, zeroed adaLN
// and final layer, merge layers W1 = 0, W2 = I, the embedders' inits (y_embedder when present).
void initialize_adaln_zero_weights(torch::nn::Module& model);

// The family's registry row.
Family dit_family();

// MACs of one DiT forward (docs/method.md §6): dense, and the SparseDiT of `layout` pooling to side×side.
FlopsReport dense_flops(const DiTConfig& cfg);
FlopsReport sparse_flops(const DiTConfig& cfg, const SparseLayout& layout, int64_t side);

// Diffusers' DiTTransformer2DModel layout (transformer_blocks.*) mapped back to the original names;
// the config.json beside it (its sample_size fixes pos_embed) comes in metadata "diffusers_config".
bool is_diffusers_dit(const StateDict& sd);
StateDict convert_diffusers_dit(const StateDict& sd, const std::string& config_json, const std::string& source);

}  // namespace sdit

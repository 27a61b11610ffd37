#pragma once
// The Latte family (Ma et al., Vchitect/Latte models/latte.py): DiT applied to the latents of a video
// clip (docs/latte.md). Every frame is patchified on its own; the blocks are DiT's adaLN-Zero blocks,
// alternating spatial (even indices: attention over the tokens of one frame) and temporal (odd
// indices: attention over the frames at one location); a fixed 1-D sin-cos temporal embedding is
// added once, before block 1. Class-conditional (extras 2, UCF101) or unconditional (extras 1).
//
// Layout at the Model interface: Latte's own frames-first (B, F, C, H, W), LatentSpec::channel_axis
// 2, so that sample.py's z = randn(n, F, 4, L, L) and its per-step randn_like are drawn in the same
// memory order, and the diffusion splits [eps | v] on dim 2 as Latte's diffusion copy does.
//
// SparseDiT-Latte keeps the embedders and head and takes the shared trunk (models/trunk.h) with the
// block index deciding the axis, so the DiT layout transfers block by block; sparse-gen and recovery
// must fall on spatial blocks (they change each frame's token set).
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>

#include "models/dit.h"
#include "models/layers.h"
#include "models/registry.h"
#include "models/trunk.h"

namespace sdit {

struct LatteConfig {
  DiTConfig dit;            // input_size, patch, channels, width, depth, heads, classes, sigma, mlp ratio
  int64_t num_frames = 16;  // frozen at construction (temp_embed's length)
  int64_t extras = 1;       // 1: unconditional, 2: class-conditional (78, text projection: not supported)

  bool class_conditional() const { return extras == 2; }
  nlohmann::json to_json() const;  // Latte's constructor argument names
  static LatteConfig from_json(const nlohmann::json& j);
  void validate() const;
};

// "Latte-XL/2" etc.: DiT's widths and depths, 16 frames of 256² (input_size 32), unconditional.
LatteConfig latte_preset(const std::string& name);

// Observer of intermediate tensors, in our (B, T, C) token layout: "patch" (x_embedder before
// pos_embed), "block<i>" (output of block i in forward order), "block1_in" (block 1's input after
// temp_embed), "final" (final layer output before unpatchify).
using LatteTrace = std::function<void(const std::string&, const torch::Tensor&)>;

class LatteImpl : public torch::nn::Module {
 public:
  LatteImpl(const LatteConfig& cfg, std::optional<SparseLayout> layout = std::nullopt);
  // x (B, F, C, H, W), t (B) original timesteps, y (B) int64 labels (class-conditional; undefined
  // otherwise); sparse: the grid a SparseDiT-Latte's SDTMs pool to (empty = dense).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                        const Grid& sparse = {});
  const LatteConfig& config() const { return cfg_; }
  Grid dense_grid() const { return Grid{cfg_.num_frames, cfg_.dit.grid(), cfg_.dit.grid()}; }
  void set_trace(LatteTrace trace) { trace_ = std::move(trace); }

  torch::Tensor pos_embed, temp_embed;
  PatchEmbed x_embedder{nullptr};
  TimestepEmbedder t_embedder{nullptr};
  LabelEmbedder y_embedder{nullptr};  // class-conditional only
  FinalLayer final_layer{nullptr};

 private:
  // temp_embed added to tokens on `grid` (the dense grid, or a sparse one whose frames were pooled).
  torch::Tensor add_temp_embed(const torch::Tensor& x, const Grid& grid) const;

  LatteConfig cfg_;
  Trunk trunk_;
  LatteTrace trace_;
};
TORCH_MODULE(Latte);

// Even block indices are spatial, odd ones temporal (latte.py's blocks[i], blocks[i + 1] pairs).
inline BlockAxis latte_block_axis(int64_t index) { return index % 2 == 0 ? BlockAxis::Spatial : BlockAxis::Temporal; }

// Latte's initialize_weights (DiT's, plus the 1-D sin-cos temp_embed); draws from the global generator.
void initialize_latte_weights(LatteImpl& model);

// Throws unless every sparse-gen and recovery block of `layout` sits on a spatial (even) index.
void check_latte_layout(const SparseLayout& layout, int64_t depth);
// The DiT-XL split transferred block by block where it fits (28 -> 2:4x1,3,1,1:2), else the
// closest layout of pairs whose sparse-gen and recovery blocks are spatial (12 -> 2:2x1,1,1,1:2).
SparseLayout latte_default_layout(int64_t depth);

// The family's registry row.
Family latte_family();

}  // namespace sdit

#pragma once
// The PixArt-α family (Chen et al. 2023; PixArt-alpha @ cac2fd3 diffusion/model/nets/PixArt.py,
// PixArtMS.py, PixArt_blocks.py; docs/pixart.md): a DiT conditioned on T5 caption features.
//
//   tokens = x_embedder(x) + pos_embed(h, w)           sin-cos with base_size and lewei_scale
//   t_emb  = t_embedder(t) [+ cat(csize(img_hw), ar(aspect_ratio))]   micro-conditions (PixArt-MS)
//   t0     = t_block(t_emb)                             adaLN-single: one Linear(C, 6C) for all blocks
//   y      = y_embedder(caption)                        Mlp(Cc -> C -> C); null caption = y_embedding
//   block  = x + g·Attn(mod(LN x)); x + CrossAttn(x, y, mask); x + g·MLP(mod(LN x))
//            with (shift, scale, gate)×2 = scale_shift_table_i + t0
//   out    = T2IFinalLayer(x, t_emb), unpatchified on the actual (h, w)
//
// Dense keys are the original state-dict names (the released .pth's "state_dict"); the SparseDiT of
// a PixArt keeps the embedders, the head and every block's cross_attn / scale_shift_table, and takes
// the authors' trunk names (models/trunk.h).
#include <torch/torch.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "io/state_dict.h"
#include "models/backbone.h"
#include "models/block.h"
#include "models/layers.h"
#include "models/registry.h"
#include "models/trunk.h"

namespace sdit {

struct PixArtConfig {
  int64_t input_size = 32;          // the training latent side; base_size = input_size / patch_size
  int64_t patch_size = 2;
  int64_t in_channels = 4;
  int64_t hidden_size = 1152;
  int64_t depth = 28;
  int64_t num_heads = 16;
  double mlp_ratio = 4.0;
  int64_t caption_channels = 4096;  // Cc: T5-XXL's d_model
  int64_t model_max_length = 120;   // L: caption tokens (the null caption's length)
  double lewei_scale = 1.0;         // diffusers' interpolation_scale: positions are divided by it
  bool learn_sigma = true;          // pred_sigma: output [eps | v]
  bool micro_conditions = false;    // PixArtMS: csize/ar embedders, any h x w divisible by the patch
  bool null_caption = true;         // y_embedder.y_embedding held (the .pth; a diffusers folder has none)
  double class_dropout_prob = 0.1;  // training: a whole caption becomes the null caption

  int64_t base_size() const { return input_size / patch_size; }
  int64_t out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  int64_t size_emb_dim() const { return hidden_size / 3; }
  int64_t mlp_hidden() const { return static_cast<int64_t>(static_cast<double>(hidden_size) * mlp_ratio); }
  nlohmann::json to_json() const;
  static PixArtConfig from_json(const nlohmann::json& j);
  void validate() const;
};

// "PixArt-XL/2" at a latent side (32: 256 px, 64: 512 px, 128: 1024 px). 1024 px is the
// multi-scale model (micro-conditions, lewei_scale 2), as the released checkpoints are.
PixArtConfig pixart_preset(const std::string& name, int64_t latent_side = 32);
// diffusers' default interpolation scale max(sample_size // 64, 1) (1, 1, 2 at 256, 512, 1024 px).
double default_lewei_scale(int64_t input_size);

// adaLN-single modulation (scale_shift_table_i + t0) and the un-gated masked cross-attention to the
// caption tokens (cross_attn.{q_linear, kv_linear, proj}) as the extra sub-layer; the token mixer is
// the shared one (dense or SparseDiT).
class PixArtBlockImpl : public TransformerBlockImpl {
 public:
  explicit PixArtBlockImpl(const Options& o);
  torch::Tensor scale_shift_table;     // (6, C)
  CrossAttention text_attn{nullptr};   // registered as "cross_attn"

 protected:
  Modulation modulation(const BlockContext& ctx) override;  // ctx.c = t0 (B, 6C)
  torch::Tensor extra(const torch::Tensor& h, const Grid& grid, const BlockContext& ctx) override;
};

// T2IFinalLayer: (shift, scale) = scale_shift_table + t_emb (not t0, no SiLU), then Linear(C -> p²·out).
class T2IFinalLayerImpl : public torch::nn::Module {
 public:
  T2IFinalLayerImpl(int64_t hidden, int64_t patch, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t_emb);
  torch::Tensor scale_shift_table;  // (2, C)
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(T2IFinalLayer);

// y_proj = Mlp(Cc -> C -> C); y_embedding (L, Cc) the learned null caption (a buffer).
class CaptionEmbedderImpl : public torch::nn::Module {
 public:
  CaptionEmbedderImpl(int64_t caption_channels, int64_t hidden, int64_t tokens, bool null_caption, double dropout);
  // caption (B, L, Cc) -> (B, L, C). In training mode whole captions become y_embedding with
  // probability `dropout` (token_drop; the caption keeps its own mask).
  torch::Tensor forward(const torch::Tensor& caption);
  torch::Tensor y_embedding;
  Mlp y_proj{nullptr};
  double dropout;
};
TORCH_MODULE(CaptionEmbedder);

// SizeEmbedder: each value's 256-d sinusoid -> Linear -> SiLU -> Linear (C/3), values of a row
// concatenated; a batch of one row is repeated to the batch.
torch::Tensor embed_sizes(TimestepEmbedderImpl& embedder, const torch::Tensor& values, int64_t batch);

// Intermediate tensors of one forward, as the golden taps name them.
struct PixArtTaps {
  torch::Tensor x_embedder, pos_embed, t_embedder, csize_embedder, ar_embedder, t_block, y_embedder, final_layer;
  std::vector<torch::Tensor> blocks;  // the output of each block in forward order
};

class PixArtImpl : public torch::nn::Module {
 public:
  PixArtImpl(const PixArtConfig& cfg, std::optional<SparseLayout> layout = std::nullopt);
  // x (B, C, H, W); t (B) timesteps (integer or fractional); c.context (B, L, Cc), c.context_mask
  // (B', L) with B' dividing B (repeated, as the reference does), undefined = every token; MS:
  // c.img_hw (B or 1, 2) pixels [h, w], c.aspect_ratio (B or 1, 1). sparse: the SDTMs' grid.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c, const Grid& sparse = {},
                        PixArtTaps* taps = nullptr);
  // The sin-cos table added to the tokens of an h x w grid: recomputed from the config (the file's
  // pos_embed buffer is kept for the state dict only, as inference.py discards it).
  torch::Tensor position_embedding(int64_t h, int64_t w, const torch::Device& device, torch::Dtype dtype);
  const PixArtConfig& config() const { return cfg_; }
  const Trunk& trunk() const { return trunk_; }

  torch::Tensor pos_embed;
  PatchEmbed x_embedder{nullptr};
  TimestepEmbedder t_embedder{nullptr};
  torch::nn::Sequential t_block{nullptr};
  CaptionEmbedder y_embedder{nullptr};
  T2IFinalLayer final_layer{nullptr};
  TimestepEmbedder csize_embedder{nullptr}, ar_embedder{nullptr};  // PixArtMS

 private:
  Grid input_grid(const torch::Tensor& x) const;
  BlockContext block_context(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c, const Grid& dense,
                             const Grid& sparse, torch::Tensor& t_emb, PixArtTaps* taps);

  PixArtConfig cfg_;
  Trunk trunk_;
  std::mutex pe_mutex_;
  std::map<std::tuple<int64_t, int64_t, std::string, int>, torch::Tensor> pe_cache_;
};
TORCH_MODULE(PixArt);

// PixArt's initialize_weights (xavier linears, N(0, 0.02) embedder MLPs, zeroed cross_attn.proj and
// output layer, sin-cos pos_embed, tables ~ randn/√C) for models built from scratch; a SparseDiT's
// merge layers start as W1 = 0, W2 = I. Draws from the global torch generator.
void initialize_pixart_weights(PixArtImpl& model);

// The family's registry row; its size entries (micro-conditions, buckets) come from pixart_sizes.cpp.
Family pixart_family();
void add_pixart_size_rows(Family& f);

// Diffusers' PixArtTransformer2DModel layout (transformer/ folder) mapped to the original names;
// config.json (metadata "diffusers_config") gives sample_size, interpolation_scale and the
// micro-conditions, with the defaults diffusers applies where the released configs omit them.
bool is_diffusers_pixart(const StateDict& sd);
StateDict convert_diffusers_pixart(const StateDict& sd, const std::string& config_json, const std::string& source);
// The inverse, for `convert --diffusers`: transformer/ tensors and config.json (dense models only).
DiffusersFolder pixart_to_diffusers(const StateDict& native, const ModelSpec& spec);

// ---- PixArt-MS sizes (ASPECT_RATIO_1024_TEST of PixArt's datasets/utils.py) ------------------

struct AspectBucket {
  const char* key;        // "0.57": the ratio fed as aspect_ratio (float(key))
  int64_t height, width;  // pixels at 1024
};
const std::vector<AspectBucket>& aspect_buckets_1024();
// The bucket whose key is closest to height / width (the first of equals, as Python's min()).
const AspectBucket& closest_bucket(double height, double width);

}  // namespace sdit

#pragma once
// The Stable Diffusion VAE (diffusers AutoencoderKL). Submodules are registered under diffusers'
// names in diffusers' order, so named_parameters() is exactly the layout of
// diffusion_pytorch_model.safetensors and load_state_dict needs no renaming table.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace sdit {

class StateDict;

struct VAEConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  int64_t layers_per_block = 2;
  int64_t norm_num_groups = 32;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  // The SD-1.x hub config has no scaling_factor; diffusers and DiT both fall back to 0.18215.
  double scaling_factor = 0.18215;
  double shift_factor = 0.0;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  int64_t downscale() const { return int64_t(1) << (block_out_channels.size() - 1); }
  // Parses a diffusers config.json; throws sdit::Error on block types or activations we do not build.
  static VAEConfig from_json(const std::string& text);
  std::string to_json() const;
};

// Observer of submodule outputs, named by diffusers module path ("decoder.up_blocks.0", ...).
using VAETrace = std::function<void(const std::string&, const torch::Tensor&)>;

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  ResnetBlock2DImpl(int64_t in, int64_t out, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
};
TORCH_MODULE(ResnetBlock2D);

// Single-head self-attention over the H*W positions (diffusers Attention with heads=1).
class VAEAttentionImpl : public torch::nn::Module {
 public:
  VAEAttentionImpl(int64_t channels, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [Linear]: keeps the "to_out.0" key
};
TORCH_MODULE(VAEAttention);

class VAEMidBlockImpl : public torch::nn::Module {
 public:
  VAEMidBlockImpl(int64_t channels, int64_t groups, bool attention);
  torch::Tensor forward(const torch::Tensor& x, const std::string& name, const VAETrace& trace);
  torch::nn::ModuleList attentions{nullptr}, resnets{nullptr};
};
TORCH_MODULE(VAEMidBlock);

class VAEEncoderImpl : public torch::nn::Module {
 public:
  explicit VAEEncoderImpl(const VAEConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x, const VAETrace& trace = {});
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  VAEMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VAEEncoder);

class VAEDecoderImpl : public torch::nn::Module {
 public:
  explicit VAEDecoderImpl(const VAEConfig& cfg);
  torch::Tensor forward(const torch::Tensor& z, const VAETrace& trace = {});
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  VAEMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VAEDecoder);

// DiagonalGaussianDistribution of diffusers: logvar is already clamped to [-30, 20].
struct LatentPosterior {
  torch::Tensor mean, logvar;
  torch::Tensor std() const { return torch::exp(0.5 * logvar); }
  // mean + std * noise; noise must have mean's shape.
  torch::Tensor sample(const torch::Tensor& noise) const;
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const VAEConfig& cfg);

  // Raw VAE decode of z (the latents already divided by scaling_factor): images in about [-1, 1].
  torch::Tensor decode(const torch::Tensor& z);
  // What DiT's sample.py does: latents / scaling_factor (+ shift_factor), then decode; no grad.
  // tile > 0 decodes the latent in overlapping tiles of that many latent pixels (bounded memory).
  torch::Tensor decode_latents(const torch::Tensor& latents, int64_t tile = 0);
  // x in [-1, 1], (N, in_channels, H, W) with H, W multiples of downscale(); no grad.
  LatentPosterior encode(const torch::Tensor& x);

  const VAEConfig& config() const { return cfg_; }
  void set_trace(VAETrace trace) { trace_ = std::move(trace); }

  VAEEncoder encoder{nullptr};
  VAEDecoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  torch::Tensor decode_tiled(const torch::Tensor& z, int64_t tile);
  VAEConfig cfg_;
  VAETrace trace_;
};
TORCH_MODULE(AutoencoderKL);

// Rewrites a VAE state dict into diffusers names: legacy attention names (query/key/value/
// proj_attn), the original LDM/CompVis layout (encoder.down.i.block.j, mid.attn_1, norm_out,
// decoder.up.i reversed, 1x1-conv attention), and a "first_stage_model." prefix of full SD files.
StateDict canonical_vae_state_dict(const StateDict& sd);
// Reads the architecture from the tensors' shapes (norm_num_groups cannot be read: it stays 32).
VAEConfig detect_vae_config(const StateDict& canonical);

// DIR is a diffusers model folder (config.json, optional, + diffusion_pytorch_model.safetensors);
// a .safetensors file is accepted too. Strict load; eval mode; CPU float32.
AutoencoderKL load_vae(const std::string& path);

}  // namespace sdit

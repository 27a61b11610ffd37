#pragma once
// What every denoiser family offers the rest of the program (sampler, trainer, bench, flops, CLI).
// A family is a row of the registry (models/registry.h): it recognises its checkpoints, reads its
// config from the tensors, builds the network, and costs it — all through the types below, so that
// nothing above models/ names a family.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "models/conditioning.h"
#include "models/grid.h"
#include "models/trunk.h"

namespace sdit {

enum class CondKind { None, ClassLabel, Text };

// The tensor a model denoises and what it is conditioned on.
struct LatentSpec {
  int64_t channels = 4;             // input channels (4: SD-VAE latents; 1 or 3: pixels)
  int64_t frames = 1;               // video frames (Latte); 1 for images
  int64_t height = 32, width = 32;  // the model's size in latent pixels (its only size when fixed)
  int64_t patch = 2;
  bool fixed_size = true;           // false: any height/width divisible by the patch (PixArt-MS)
  int64_t vae_downscale = 8;        // image pixels per latent pixel; 1 for pixel-space models
  bool learn_sigma = true;          // output = [eps | v] along the channel axis (2·channels)
  int64_t channel_axis = 1;         // (B, C, H, W) at 1; Latte's frames-first (B, F, C, H, W) at 2
  CondKind cond = CondKind::ClassLabel;
  int64_t num_classes = 0;                 // ClassLabel
  int64_t context_len = 0, context_dim = 0;  // Text
  bool size_conditions = false;            // takes img_hw / aspect_ratio (PixArt-MS)

  bool latent_space() const { return vae_downscale > 1; }
  int64_t out_channels() const { return learn_sigma ? 2 * channels : channels; }
  // The shape of x for `batch` samples of height × width latent pixels.
  std::vector<int64_t> shape(int64_t batch, int64_t height, int64_t width) const;
  std::vector<int64_t> shape(int64_t batch) const { return shape(batch, height, width); }
  // The dense token grid of an input of that size; throws when the model cannot take that size.
  Grid grid(int64_t height, int64_t width) const;
  Grid grid() const { return grid(height, width); }
  // Samples in this layout as a batch of single images (B·F, C, H, W), each sample's frames in order;
  // image samples (4-D) come back as they are.
  torch::Tensor frames_as_images(const torch::Tensor& x) const;
};

// All a family needs to build, cost or describe a model without its weights.
struct ModelSpec {
  std::string family;                  // registry row: "DiT", ...
  nlohmann::json config;               // the family's config: what a file's "config" metadata holds
  std::optional<SparseLayout> layout;  // a SparseDiT of that family
  bool sparse() const { return layout.has_value(); }
};

// A built network of some family. Model (models/model.h) is the handle the program passes around.
class Backbone {
 public:
  virtual ~Backbone() = default;
  virtual torch::nn::Module& module() = 0;
  // x per latent().shape; t (B) original timesteps (int64, or floating where fractional);
  // sparse: the grid the SDTMs pool to (empty: the dense grid). Returns (B, out_channels, ...).
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c,
                                const Grid& sparse) = 0;
  // The unconditional rows classifier-free guidance pairs with `cond`, row for row.
  virtual Conditioning null_conditioning(const Conditioning& cond) const = 0;
  // Throws a clear error when `cond` does not fit the model (label range, context shape).
  virtual void check_conditioning(const Conditioning& cond, int64_t batch) const = 0;
  // The training initialisation of a freshly built model (draws from the global generator).
  virtual void init_weights() = 0;
};

}  // namespace sdit

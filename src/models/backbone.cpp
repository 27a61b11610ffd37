#include "models/backbone.h"

#include "util/error.h"

namespace sdit {

std::vector<int64_t> LatentSpec::shape(int64_t batch, int64_t h, int64_t w) const {
  grid(h, w);  // validates the size
  if (channel_axis == 2) return {batch, frames, channels, h, w};
  if (frames > 1) return {batch, channels, frames, h, w};
  return {batch, channels, h, w};
}

torch::Tensor LatentSpec::frames_as_images(const torch::Tensor& x) const {
  if (x.dim() == 4) return x;
  if (x.dim() != 5) fail("expected image (B, C, H, W) or video samples, got ", x.sizes());
  return channel_axis == 2 ? x.flatten(0, 1) : x.transpose(1, 2).flatten(0, 1);
}

Grid LatentSpec::grid(int64_t h, int64_t w) const {
  if (fixed_size && (h != height || w != width))
    fail("the model takes ", height, "x", width, " latents (", height * vae_downscale, "x", width * vae_downscale,
         " px); got ", h, "x", w);
  if (h <= 0 || w <= 0 || h % patch != 0 || w % patch != 0)
    fail("latent size ", h, "x", w, " is not a positive multiple of the patch size ", patch);
  return Grid{frames, h / patch, w / patch};
}

}  // namespace sdit

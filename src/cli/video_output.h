#pragma once
// The outputs of `sparsedit sample` for a video model (Latte): the VAE decodes the latents frame by
// frame, as Latte's sample.py does ('b f c h w -> (b f) c h w'), then -o writes a video chosen by its
// extension (.mp4, .webp, .gif; several samples side by side in a grid, frame by frame) or a PNG
// grid of every frame (.png: one row per sample), and --frames-dir one PNG per sample and frame.
#include <torch/torch.h>

#include <map>
#include <string>

#include "cli/common.h"
#include "models/backbone.h"
#include "models/vae.h"

namespace sdit::cli {

struct VideoOutputOptions {
  std::string output;      // "" or a .mp4/.webp/.gif/.png path
  std::string frames_dir;  // "" or a folder for s<sample>_f<frame>.png
  double fps = 8.0;        // sample.py's imageio.mimwrite(fps=8)
  int64_t nrow = 4;        // samples per row of the video grid
  int64_t vae_batch = 1;   // frames per VAE decode
  std::map<std::string, std::string> png_text;  // tEXt chunks of the PNG outputs
};

// Samples (n, ...) of a video model in its layout -> decoded frames (n, F, 3, H, W) in about [-1, 1]:
// through the VAE in chunks of vae_batch frames, or as they are for a pixel-space model.
torch::Tensor decode_video_samples(const torch::Tensor& samples, const LatentSpec& latent, AutoencoderKL* vae,
                                   int64_t vae_batch, const torch::Device& device);

// Writes -o and --frames-dir for decoded videos (n, F, 3, H, W); throws on a bad extension.
void write_video_outputs(const torch::Tensor& videos, const VideoOutputOptions& opt, const Log& log);

// The line `sample` prints once about the MP4 encoder (H.264, or the MPEG-4 fallback).
std::string video_output_note(const std::string& output);

}  // namespace sdit::cli

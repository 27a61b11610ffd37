#pragma once
// Turning an ImageFolder tree into a latent dataset, as DiT's training loop (and fast-DiT's
// extract_features.py) sees it: center_crop_arr -> [-1, 1] -> VAE posterior sample x scale.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <utility>
#include <string>
#include <vector>

#include "models/vae.h"

namespace sdit {

// Caption features for text-to-image data: (n, L, D) floats and (n, L) masks for n captions.
struct CaptionEncoder {
  int64_t tokens = 0, channels = 0;  // L, D
  std::string name;                  // recorded in meta.json (e.g. the T5 folder)
  std::function<std::pair<torch::Tensor, torch::Tensor>(const std::vector<std::string>&)> encode;
};

struct EncodeFolderOptions {
  std::string images_dir;      // an ImageFolder tree, or (encode_video_folder) ROOT/<class>/<clip>
  std::string out_dir;
  int64_t image_size = 256;
  bool flip = false;           // also store each image mirrored (see io/latent_dataset.h)
  int64_t frames = 16;         // videos: frames per clip (Latte: 16)
  int64_t frame_interval = 1;  // videos: take every k-th frame (Latte's frame_interval)
  uint64_t seed = 0;           // CPU generator for the posterior draws
  int64_t batch_size = 8;
  int64_t shard_size = 4096;
  bool overwrite = false;
  // Text-to-image data instead of class folders: "txt" (every image with a <stem>.txt caption beside
  // it, under images_dir) or a JSONL file of {"image", "caption"} (data/caption_index.h); each batch's
  // captions go through caption_encoder and are stored beside the latents, one class, labels 0.
  std::string captions;
  CaptionEncoder caption_encoder;
  std::function<void(int64_t done, int64_t total)> progress;
};

struct EncodeFolderResult {
  int64_t images = 0, samples = 0, skipped_files = 0;
  std::vector<std::string> classes;
};

// Posterior noise is drawn per sample, in dataset order, from one CPU generator seeded with
// opts.seed, then moved to the VAE's device: the dataset depends on the seed only, not on the
// batch size or the device.
EncodeFolderResult encode_image_folder(AutoencoderKL& vae, const EncodeFolderOptions& opts);

// A video folder (data/video_folder.h) -> a video latent dataset: per clip, `frames` frames
// frame_interval apart, each centre-cropped and encoded on its own (Latte encodes frame by frame),
// stored (F, C, h, w). `images` counts clips.
EncodeFolderResult encode_video_folder(AutoencoderKL& vae, const EncodeFolderOptions& opts);

}  // namespace sdit

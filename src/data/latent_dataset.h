#pragma once
// Pre-encoded training data: VAE latents (already multiplied by the scale factor) and class labels.
//
// DATASET_DIR/meta.json     {"num_samples", "latent_shape": [4, h, w], "num_classes", "classes": [...],
//                            "shards": ["shard_00000.safetensors", ...], "scale": 0.18215, "flip": bool,
//                            "image_size", "seed"}
// DATASET_DIR/shard_NNNNN.safetensors   "latents" (n, 4, h, w) F32, "labels" (n) I64
//                                       [+ "captions" (n, L, D) F32, "caption_mask" (n, L) I64]
//
// A captioned dataset (text-to-image training, e.g. PixArt) stores each image's text-encoder
// features beside its latent; meta.json then adds "caption_tokens": L, "caption_channels": D and
// "caption_encoder" (where the features came from), and its labels are all 0 (one class).
//
// Video datasets (`encode --videos`) store each clip's latents frames first, latent_shape [F, 4, h, w]
// and "latents" (n, F, 4, h, w): Latte's layout, what a video model takes as one sample.
//
// With flip, every image is stored twice, unflipped then mirrored (adjacent samples), each with its
// own posterior draw: training then sees both orientations without re-encoding, where the
// reference's RandomHorizontalFlip would pick one at random per epoch.
// meta.json is written last, so a dataset whose writer was interrupted cannot be opened.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace sdit {

struct LatentDataset {
  // Loads every shard into memory; throws sdit::Error on a missing/partial/inconsistent dataset.
  static LatentDataset open(const std::string& dir);
  int64_t size() const { return latents.defined() ? latents.size(0) : 0; }

  torch::Tensor latents;  // (N, C, h, w) float32; video: (N, F, C, h, w)
  torch::Tensor labels;   // (N) int64 in [0, num_classes)
  int64_t num_classes = 0;
  std::vector<std::string> classes;
  double scale = 0.18215;
  bool flip = false;
  torch::Tensor captions;      // (N, L, D) float32, or undefined
  torch::Tensor caption_mask;  // (N, L) int64
  std::string caption_encoder;
  bool captioned() const { return captions.defined(); }
};

class LatentDatasetWriter {
 public:
  struct Options {
    std::vector<std::string> classes;
    std::vector<int64_t> latent_shape;  // {C, h, w}, or {F, C, h, w} for video clips
    int64_t shard_size = 4096;
    double scale = 0.18215;
    bool flip = false;
    int64_t image_size = 0;  // recorded for provenance
    uint64_t seed = 0;
    int64_t caption_tokens = 0, caption_channels = 0;  // > 0: every add() brings caption features
    std::string caption_encoder;
  };
  // dir is created if needed; it must not already hold a dataset unless overwrite (then the old
  // meta.json and shards are removed first).
  LatentDatasetWriter(std::string dir, Options opts, bool overwrite = false);
  // latents (n, ...latent_shape) float, labels (n) integer; captions (n, L, D) and caption_mask (n, L)
  // exactly when the dataset is captioned.
  void add(const torch::Tensor& latents, const torch::Tensor& labels, const torch::Tensor& captions = {},
           const torch::Tensor& caption_mask = {});
  // Flushes the last shard and writes meta.json; returns the number of samples.
  int64_t finish();

 private:
  void flush();
  std::string dir_;
  Options opts_;
  std::vector<torch::Tensor> pending_latents_, pending_labels_, pending_captions_, pending_masks_;
  int64_t pending_ = 0, total_ = 0;
  std::vector<std::string> shards_;
  bool finished_ = false;
};

}  // namespace sdit

#include "train/encode_folder.h"

#include <ATen/CPUGeneratorImpl.h>

#include "io/image.h"
#include "data/caption_index.h"
#include "data/image_folder.h"
#include "data/latent_dataset.h"
#include "data/video_folder.h"
#include "util/error.h"

namespace sdit {

namespace {

// Checks the options against the VAE; returns the latent side.
int64_t latent_side(AutoencoderKL& vae, const EncodeFolderOptions& opts) {
  const auto& cfg = vae->config();
  const int64_t f = cfg.downscale();
  if (opts.image_size <= 0 || opts.image_size % f != 0)
    fail("--image-size must be a positive multiple of ", f, " (the VAE's downscale factor), got ", opts.image_size);
  if (opts.batch_size <= 0) fail("--batch-size must be positive, got ", opts.batch_size);
  if (cfg.in_channels != 3) fail("encoding RGB images needs a VAE with 3 input channels, this one has ", cfg.in_channels);
  return opts.image_size / f;
}

LatentDatasetWriter::Options writer_options(AutoencoderKL& vae, const EncodeFolderOptions& opts,
                                            const std::vector<std::string>& classes, std::vector<int64_t> shape) {
  LatentDatasetWriter::Options w;
  w.classes = classes;
  w.latent_shape = std::move(shape);
  w.shard_size = opts.shard_size;
  w.scale = vae->config().scaling_factor;
  w.flip = opts.flip;
  w.image_size = opts.image_size;
  w.seed = opts.seed;
  if (!opts.captions.empty()) {
    w.caption_tokens = opts.caption_encoder.tokens;
    w.caption_channels = opts.caption_encoder.channels;
    w.caption_encoder = opts.caption_encoder.name;
  }
  return w;
}

// Class folders (ImageFolder), or captioned images (one class, labels 0; their captions in order).
ImageFolderIndex index_images(const EncodeFolderOptions& opts, std::vector<std::string>& captions) {
  if (opts.captions.empty()) return scan_image_folder(opts.images_dir);
  if (!opts.caption_encoder.encode || opts.caption_encoder.tokens <= 0 || opts.caption_encoder.channels <= 0)
    fail("--captions needs a text encoder for the captions");
  CaptionedImages c = opts.captions == "txt" ? scan_captioned_folder(opts.images_dir) : read_caption_jsonl(opts.captions);
  ImageFolderIndex index;
  index.classes = {"captioned"};
  index.files = std::move(c.files);
  index.labels.assign(index.files.size(), 0);
  index.skipped = c.skipped;
  captions = std::move(c.captions);
  return index;
}

// Posterior samples × scale of images x (n, 3, H, W) in [-1, 1], in chunks of batch_size; the noise
// of each image is drawn from `gen` in order, so the result does not depend on the batch size.
torch::Tensor encode_images(AutoencoderKL& vae, const torch::Tensor& x, int64_t batch_size, at::Generator& gen) {
  const auto& cfg = vae->config();
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < x.size(0); i += batch_size) {
    const auto xb = x.narrow(0, i, std::min(batch_size, x.size(0) - i));
    auto post = vae->encode(xb);
    std::vector<torch::Tensor> noise;
    for (int64_t k = 0; k < xb.size(0); ++k)
      noise.push_back(torch::randn({1, post.mean.size(1), post.mean.size(2), post.mean.size(3)}, gen, torch::kFloat32));
    out.push_back(post.sample(torch::cat(noise, 0).to(post.mean.device())) * cfg.scaling_factor);
  }
  return torch::cat(out, 0);
}

EncodeFolderResult finish(LatentDatasetWriter& writer, int64_t inputs, int64_t skipped,
                          const std::vector<std::string>& classes) {
  EncodeFolderResult r;
  r.images = inputs;
  r.samples = writer.finish();
  r.skipped_files = skipped;
  r.classes = classes;
  return r;
}

}  // namespace

EncodeFolderResult encode_image_folder(AutoencoderKL& vae, const EncodeFolderOptions& opts) {
  const int64_t h = latent_side(vae, opts);
  std::vector<std::string> captions;
  const ImageFolderIndex index = index_images(opts, captions);
  const bool captioned = !opts.captions.empty();
  const int64_t n = static_cast<int64_t>(index.files.size());
  LatentDatasetWriter writer(opts.out_dir,
                             writer_options(vae, opts, index.classes, {vae->config().latent_channels, h, h}),
                             opts.overwrite);
  auto gen = at::detail::createCPUGenerator(opts.seed);
  const int64_t copies = opts.flip ? 2 : 1;
  if (opts.progress) opts.progress(0, n);
  for (int64_t start = 0; start < n; start += opts.batch_size) {
    const int64_t count = std::min(opts.batch_size, n - start);
    std::vector<torch::Tensor> xs, ys;
    std::vector<std::string> texts;
    for (int64_t i = start; i < start + count; ++i) {
      for (int64_t c = 0; captioned && c < copies; ++c) texts.push_back(captions[i]);  // a mirror keeps its caption
      auto img = image_to_unit_range(center_crop_arr(read_image(index.files[i]), opts.image_size));
      xs.push_back(img);
      if (opts.flip) xs.push_back(img.flip({2}));
      for (int64_t c = 0; c < copies; ++c) ys.push_back(torch::full({1}, index.labels[i], torch::kInt64));
    }
    const auto z = encode_images(vae, torch::stack(xs), opts.batch_size * copies, gen);
    if (captioned) {
      auto [emb, mask] = opts.caption_encoder.encode(texts);
      writer.add(z, torch::cat(ys, 0), emb, mask);
    } else {
      writer.add(z, torch::cat(ys, 0));
    }
    if (opts.progress) opts.progress(start + count, n);
  }
  return finish(writer, n, index.skipped, index.classes);
}

EncodeFolderResult encode_video_folder(AutoencoderKL& vae, const EncodeFolderOptions& opts) {
  const int64_t h = latent_side(vae, opts);
  if (opts.frames < 1 || opts.frame_interval < 1) fail("--frames and --frame-interval must be positive");
  if (!opts.captions.empty()) fail("--captions applies to image folders; captioned videos are not supported");
  const VideoFolderIndex index = scan_video_folder(opts.images_dir);
  const int64_t n = static_cast<int64_t>(index.clips.size()), F = opts.frames;
  LatentDatasetWriter writer(opts.out_dir,
                             writer_options(vae, opts, index.classes, {F, vae->config().latent_channels, h, h}),
                             opts.overwrite);
  auto gen = at::detail::createCPUGenerator(opts.seed);
  if (opts.progress) opts.progress(0, n);
  for (int64_t i = 0; i < n; ++i) {
    const auto frames = read_clip_frames(index.clips[i], F, opts.frame_interval);
    std::vector<torch::Tensor> xs;
    for (int64_t f = 0; f < F; ++f) xs.push_back(image_to_unit_range(center_crop_arr(frames[f].contiguous(), opts.image_size)));
    const auto clip = torch::stack(xs);  // (F, 3, H, W)
    const auto label = torch::full({1}, index.labels[i], torch::kInt64);
    writer.add(encode_images(vae, clip, opts.batch_size, gen).unsqueeze(0), label);
    if (opts.flip) writer.add(encode_images(vae, clip.flip({3}), opts.batch_size, gen).unsqueeze(0), label);
    if (opts.progress) opts.progress(i + 1, n);
  }
  return finish(writer, n, index.skipped, index.classes);
}

}  // namespace sdit

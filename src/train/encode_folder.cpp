#include "train/encode_folder.h"

#include <ATen/CPUGeneratorImpl.h>

#include "io/image.h"
#include "data/image_folder.h"
#include "data/latent_dataset.h"
#include "util/error.h"

namespace sdit {

EncodeFolderResult encode_image_folder(AutoencoderKL& vae, const EncodeFolderOptions& opts) {
  const auto& cfg = vae->config();
  const int64_t f = cfg.downscale();
  if (opts.image_size <= 0 || opts.image_size % f != 0)
    fail("--image-size must be a positive multiple of ", f, " (the VAE's downscale factor), got ", opts.image_size);
  if (opts.batch_size <= 0) fail("--batch-size must be positive, got ", opts.batch_size);
  if (cfg.in_channels != 3) fail("encoding RGB images needs a VAE with 3 input channels, this one has ", cfg.in_channels);

  const ImageFolderIndex index = scan_image_folder(opts.images_dir);
  const int64_t n = static_cast<int64_t>(index.files.size());
  const int64_t h = opts.image_size / f;

  LatentDatasetWriter::Options wopts;
  wopts.classes = index.classes;
  wopts.latent_shape = {cfg.latent_channels, h, h};
  wopts.shard_size = opts.shard_size;
  wopts.scale = cfg.scaling_factor;
  wopts.flip = opts.flip;
  wopts.image_size = opts.image_size;
  wopts.seed = opts.seed;
  LatentDatasetWriter writer(opts.out_dir, wopts, opts.overwrite);

  auto gen = at::detail::createCPUGenerator(opts.seed);
  const int64_t copies = opts.flip ? 2 : 1;
  if (opts.progress) opts.progress(0, n);
  for (int64_t start = 0; start < n; start += opts.batch_size) {
    const int64_t count = std::min(opts.batch_size, n - start);
    std::vector<torch::Tensor> xs, ys;
    for (int64_t i = start; i < start + count; ++i) {
      auto img = image_to_unit_range(center_crop_arr(read_image(index.files[i]), opts.image_size));
      xs.push_back(img);
      if (opts.flip) xs.push_back(img.flip({2}));
      for (int64_t c = 0; c < copies; ++c) ys.push_back(torch::full({1}, index.labels[i], torch::kInt64));
    }
    auto x = torch::stack(xs);
    auto post = vae->encode(x);
    std::vector<torch::Tensor> noise;
    for (int64_t k = 0; k < x.size(0); ++k)
      noise.push_back(torch::randn({1, cfg.latent_channels, h, h}, gen, torch::kFloat32));
    auto z = post.sample(torch::cat(noise, 0).to(post.mean.device())) * cfg.scaling_factor;
    writer.add(z, torch::cat(ys, 0));
    if (opts.progress) opts.progress(start + count, n);
  }
  EncodeFolderResult r;
  r.images = n;
  r.samples = writer.finish();
  r.skipped_files = index.skipped;
  r.classes = index.classes;
  return r;
}

}  // namespace sdit

// PixArt-MS output sizes: the aspect-ratio buckets of its inference script and the micro-conditions
// (img_hw, aspect_ratio) a request of H x W pixels feeds the model (docs/pixart.md §2.5).
#include <cmath>

#include "models/pixart.h"
#include "util/error.h"

namespace sdit {

const std::vector<AspectBucket>& aspect_buckets_1024() {
  // ASPECT_RATIO_1024_TEST (PixArt-alpha diffusion/data/datasets/utils.py), in the dict's order:
  // the key is the ratio h / w the model is fed, the size the bucket's pixels.
  static const std::vector<AspectBucket> table = {
      {"0.25", 512, 2048},  {"0.28", 512, 1856},  {"0.32", 576, 1792},  {"0.33", 576, 1728},  {"0.35", 576, 1664},
      {"0.4", 640, 1600},   {"0.42", 640, 1536},  {"0.48", 704, 1472},  {"0.5", 704, 1408},   {"0.52", 704, 1344},
      {"0.57", 768, 1344},  {"0.6", 768, 1280},   {"0.68", 832, 1216},  {"0.72", 832, 1152},  {"0.78", 896, 1152},
      {"0.82", 896, 1088},  {"0.88", 960, 1088},  {"0.94", 960, 1024},  {"1.0", 1024, 1024},  {"1.07", 1024, 960},
      {"1.13", 1088, 960},  {"1.21", 1088, 896},  {"1.29", 1152, 896},  {"1.38", 1152, 832},  {"1.46", 1216, 832},
      {"1.67", 1280, 768},  {"1.75", 1344, 768},  {"2.0", 1408, 704},   {"2.09", 1472, 704},  {"2.4", 1536, 640},
      {"2.5", 1600, 640},   {"3.0", 1728, 576},   {"4.0", 2048, 512}};
  return table;
}

const AspectBucket& closest_bucket(double height, double width) {
  if (!(height > 0) || !(width > 0)) fail("image size ", height, "x", width, " must be positive");
  const double ratio = height / width;
  const AspectBucket* best = nullptr;
  double best_diff = 0;
  // min(keys, key=|float(k) - h/w|): the first of equally close keys wins.
  for (const auto& b : aspect_buckets_1024()) {
    const double d = std::abs(std::stod(b.key) - ratio);
    if (!best || d < best_diff) best = &b, best_diff = d;
  }
  return *best;
}

namespace {

// The conditions of one output of h x w pixels: img_hw = [h, w]; aspect_ratio = the closest bucket's
// key as PixArt's inference.py feeds it (e.g. 0.57 for 768 x 1344), or h / w exactly as diffusers does.
Conditioning size_conditions(const ModelSpec& spec, const SizeRequest& r) {
  const PixArtConfig c = PixArtConfig::from_json(spec.config);
  Conditioning out;
  if (!c.micro_conditions) return out;
  const double ar = r.exact_ratio ? static_cast<double>(r.height) / static_cast<double>(r.width)
                                  : std::stod(closest_bucket(static_cast<double>(r.height),
                                                             static_cast<double>(r.width)).key);
  out.img_hw = torch::tensor({static_cast<float>(r.height), static_cast<float>(r.width)}).view({1, 2});
  out.aspect_ratio = torch::tensor({static_cast<float>(ar)}).view({1, 1});
  return out;
}

// The closest bucket's size, scaled from the 1024-px table to the model's own size and rounded to
// whole patches of latent pixels (exact for the released 1024-MS model).
SizeRequest snap_to_bucket(const ModelSpec& spec, const SizeRequest& r) {
  const PixArtConfig c = PixArtConfig::from_json(spec.config);
  if (!c.micro_conditions) fail("only a multi-scale PixArt-MS has aspect-ratio buckets; this model takes one size");
  const auto& b = closest_bucket(static_cast<double>(r.height), static_cast<double>(r.width));
  const double scale = static_cast<double>(c.input_size * 8) / 1024.0;
  const int64_t unit = 8 * c.patch_size;
  auto snap = [&](int64_t px) {
    return std::max<int64_t>(unit, std::llround(static_cast<double>(px) * scale / static_cast<double>(unit)) * unit);
  };
  SizeRequest out = r;
  out.height = snap(b.height);
  out.width = snap(b.width);
  return out;
}

}  // namespace

// Hooked into the family row by pixart_family.cpp.
void add_pixart_size_rows(Family& f) {
  f.size_conditions = size_conditions;
  f.snap_to_bucket = snap_to_bucket;
}

}  // namespace sdit

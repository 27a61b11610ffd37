#include "eval/eval_inputs.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>

#include "data/npz.h"
#include "io/file_util.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "data/mnist.h"
#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;

bool starts_with_zip_magic(const std::string& path) {
  auto f = MappedFile::open(path);
  return f->size() >= 4 && std::memcmp(f->data(), "PK\x03\x04", 4) == 0;
}

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e;
}

// Integers separated by commas and/or whitespace.
torch::Tensor parse_int_text(const std::string& text, const std::string& what) {
  std::vector<int64_t> v;
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c) || c == ',') {
      ++i;
      continue;
    }
    size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(text.substr(i, 24), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    const size_t end = i + used;
    if (used == 0 || (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end])) && text[end] != ','))
      fail(what, ": expected integer labels separated by commas or spaces, found '", text.substr(i, 20), "'");
    v.push_back(x);
    i = end;
  }
  if (v.empty()) fail(what, ": no labels");
  return torch::tensor(v, torch::kLong);
}

torch::Tensor check_labels(const torch::Tensor& t, const std::string& what) {
  if (t.dim() != 1 || !(c10::isIntegralType(t.scalar_type(), /*includeBool=*/false)))
    fail(what, ": labels must be a 1-D integer tensor, got ", c10::toString(t.scalar_type()), " ",
         shape_str(t.sizes().vec()));
  return t.to(torch::kLong).contiguous();
}

EvalInput from_folder(const std::string& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto ext = lower_ext(it->path());
    if (it->is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) files.push_back(it->path());
  }
  if (ec) fail("cannot list '", dir, "': ", ec.message());
  if (files.empty()) fail("'", dir, "' holds no .png or .jpg images");
  std::sort(files.begin(), files.end());
  std::vector<torch::Tensor> imgs;
  imgs.reserve(files.size());
  for (const auto& f : files) {
    auto im = read_image(f.string());
    if (!imgs.empty() && !im.sizes().equals(imgs.front().sizes()))
      fail("'", f.string(), "' is ", im.size(1), "x", im.size(0), " but '", files.front().string(), "' is ",
           imgs.front().size(1), "x", imgs.front().size(0), ": every image of a set must have one size");
    imgs.push_back(im);
  }
  EvalInput in;
  in.images = torch::stack(imgs).permute({0, 3, 1, 2}).contiguous();
  return in;
}

torch::Tensor images_from_tensor(const torch::Tensor& t, const std::string& what) {
  if (t.dim() != 4 || t.size(0) == 0) fail(what, " must be (N, C, H, W) images, got ", shape_str(t.sizes().vec()));
  if (t.size(1) != 1 && t.size(1) != 3)
    fail(what, " has ", t.size(1), " channels: images have 1 or 3 (VAE latents must be decoded first, e.g. "
         "`sparsedit decode --save-tensor`)");
  if (t.scalar_type() == torch::kByte) return t;  // any layout: consumers read it a batch at a time
  if (!torch::isFloatingType(t.scalar_type())) fail(what, " must be float in [-1, 1] or uint8, got ", c10::toString(t.scalar_type()));
  if (!torch::isfinite(t).all().item<bool>()) fail(what, " holds non-finite values");
  return quantize_images(t);
}

EvalInput from_safetensors(const std::string& path, const std::string& key) {
  auto sd = read_safetensors(path);
  std::string k = key;
  if (k.empty()) k = sd.contains("images") ? "images" : "latents";
  const auto* t = sd.find(k);
  if (!t) {
    std::string names;
    for (const auto& n : sd.keys()) names += (names.empty() ? "" : ", ") + n;
    fail("'", path, "' has no tensor '", k, "'", key.empty() ? " (nor 'images')" : "", "; it holds: ", names,
         " (choose one with --key)");
  }
  EvalInput in;
  in.images = images_from_tensor(*t, "tensor '" + k + "' in '" + path + "'");
  if (const auto* l = sd.find("labels")) {
    in.labels = check_labels(*l, "tensor 'labels' in '" + path + "'");
  } else if (auto it = sd.metadata.find("class_labels"); it != sd.metadata.end()) {
    in.labels = parse_int_text(it->second, "metadata class_labels of '" + path + "'");
  }
  return in;
}

EvalInput from_npz(const std::string& path) {
  NpzReader npz(path);
  EvalInput in;
  // Reference batches hold both statistics and 10k images; FID needs only the statistics, so
  // the (large) images are not read.
  if (npz.contains("mu") && npz.contains("sigma")) {
    in.stats = read_stats_npz(path);
    return in;
  }
  if (!npz.contains("arr_0")) fail("'", path, "' holds neither images (arr_0) nor statistics (mu, sigma)");
  auto a = npz.get("arr_0");
  if (a.scalar_type() != torch::kByte) fail("'", path, "' arr_0 must be uint8 images (as ADM's evaluator reads them), got ",
                                           c10::toString(a.scalar_type()));
  if (a.dim() == 3) a = a.unsqueeze(3);
  if (a.dim() != 4) fail("'", path, "' arr_0 must be (N, H, W, C) images, got ", shape_str(a.sizes().vec()));
  // A view of the mapped file, permuted without a copy: feature batches read it as they go.
  in.images = images_from_tensor(a.permute({0, 3, 1, 2}), "arr_0 of '" + path + "'");
  if (npz.contains("arr_1")) in.labels = check_labels(npz.get("arr_1"), "arr_1 of '" + path + "'");
  return in;
}

}  // namespace

FeatureStats read_stats_npz(const std::string& path) {
  NpzReader npz(path);
  FeatureStats s;
  for (const char* k : {"mu", "sigma"}) {
    auto t = npz.get(k);
    if (!torch::isFloatingType(t.scalar_type())) fail("'", path, "' ", k, " must be floating point");
    (std::strcmp(k, "mu") == 0 ? s.mu : s.sigma) = t.to(torch::kDouble);
  }
  check_stats(s, "statistics '" + path + "'");
  return s;
}

void write_stats_npz(const std::string& path, const FeatureStats& s) {
  write_npz(path, {{"mu", s.mu.to(torch::kDouble)}, {"sigma", s.sigma.to(torch::kDouble)}});
}

torch::Tensor parse_labels(const std::string& spec) {
  if (!is_regular_file(spec)) return parse_int_text(spec, "--labels '" + spec + "' (no such file, so read as a list)");
  if (starts_with_zip_magic(spec)) {
    NpzReader npz(spec);
    const char* k = npz.contains("labels") ? "labels" : "arr_1";
    return check_labels(npz.get(k), std::string(k) + " of '" + spec + "'");
  }
  if (lower_ext(spec) == ".safetensors") {
    auto sd = read_safetensors(spec);
    if (const auto* l = sd.find("labels")) return check_labels(*l, "tensor 'labels' in '" + spec + "'");
    auto it = sd.metadata.find("class_labels");
    if (it == sd.metadata.end()) fail("'", spec, "' has neither a 'labels' tensor nor class_labels metadata");
    return parse_int_text(it->second, "metadata class_labels of '" + spec + "'");
  }
  return parse_int_text(read_text_file(spec), "labels file '" + spec + "'");
}

EvalInput load_eval_input(const std::string& source, const std::string& key, const std::string& cache_dir) {
  EvalInput in;
  if ((source == "mnist-test" || source == "mnist-train") && !fs::exists(source)) {
    auto m = load_mnist(cache_dir.empty() ? default_cache_dir() : cache_dir);
    const bool test = source == "mnist-test";
    in.images = quantize_images(test ? m.test_images : m.train_images);
    in.labels = test ? m.test_labels : m.train_labels;
  } else if (is_directory(source)) {
    in = from_folder(source);
  } else if (is_regular_file(source)) {
    in = starts_with_zip_magic(source) ? from_npz(source) : from_safetensors(source, key);
  } else {
    fail("'", source, "' does not exist (expected a folder of images, a .safetensors or .npz file, or mnist-test / mnist-train)");
  }
  in.source = source;
  if (in.images.defined() && in.labels.defined() && in.labels.size(0) != in.images.size(0))
    fail("'", source, "' holds ", in.images.size(0), " images but ", in.labels.size(0), " labels");
  if (in.stats) {
    in.description = "statistics (" + std::to_string(in.stats->mu.size(0)) + "-d) from " + source;
  } else {
    in.description = std::to_string(in.images.size(0)) + " images " + std::to_string(in.images.size(2)) + "x" +
                     std::to_string(in.images.size(3)) + "x" + std::to_string(in.images.size(1)) + " from " + source;
  }
  return in;
}

}  // namespace sdit

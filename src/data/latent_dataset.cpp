#include "data/latent_dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/file_util.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "util/error.h"

namespace sdit {

namespace fs = std::filesystem;

namespace {

std::string shard_name(size_t i) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "shard_%05zu.safetensors", i);
  return buf;
}

// (n, ...shape)
bool has_sample_shape(const torch::Tensor& t, const std::vector<int64_t>& shape) {
  const auto sizes = t.sizes().vec();
  return sizes.size() == shape.size() + 1 && std::equal(shape.begin(), shape.end(), sizes.begin() + 1);
}

bool is_dataset_file(const std::string& name) {
  return name == "meta.json" || (name.rfind("shard_", 0) == 0 && name.size() > 12 &&
                                 name.compare(name.size() - 12, 12, ".safetensors") == 0);
}

// A captioned shard's "captions" (n, L, D) and "caption_mask" (n, L), checked against meta.json.
void read_shard_captions(const StateDict& sd, const std::string& path, int64_t n, int64_t tokens, int64_t channels,
                         std::vector<torch::Tensor>& caps, std::vector<torch::Tensor>& masks) {
  const auto* c = sd.find("captions");
  const auto* cm = sd.find("caption_mask");
  if (!c || !cm) fail("dataset shard '", path, "' of a captioned dataset must hold 'captions' and 'caption_mask'");
  if (c->dim() != 3 || c->size(0) != n || c->size(1) != tokens || c->size(2) != channels ||
      !torch::isFloatingType(c->scalar_type()))
    fail("dataset shard '", path, "': captions have shape ", shape_str(c->sizes().vec()), ", meta.json says [", n,
         ", ", tokens, ", ", channels, "] floats");
  if (cm->dim() != 2 || cm->size(0) != n || cm->size(1) != tokens || torch::isFloatingType(cm->scalar_type()))
    fail("dataset shard '", path, "': caption_mask has shape ", shape_str(cm->sizes().vec()), ", expected integer [", n,
         ", ", tokens, "]");
  caps.push_back(c->to(torch::kFloat32).contiguous());
  masks.push_back(cm->to(torch::kInt64).contiguous());
}

}  // namespace

LatentDataset LatentDataset::open(const std::string& dir) {
  if (!is_directory(dir)) fail("dataset folder '", dir, "' does not exist");
  const std::string meta_path = dir + "/meta.json";
  if (!is_regular_file(meta_path))
    fail("'", dir, "' has no meta.json: not a latent dataset (make one with `sparsedit encode`), or its encoding did not finish");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_text_file(meta_path));
  } catch (const nlohmann::json::exception& e) {
    fail("'", meta_path, "' is not valid JSON: ", e.what());
  }
  LatentDataset ds;
  int64_t num_samples = 0;
  std::vector<int64_t> shape;
  std::vector<std::string> shards;
  int64_t caption_tokens = 0, caption_channels = 0;
  try {
    num_samples = m.at("num_samples").get<int64_t>();
    shape = m.at("latent_shape").get<std::vector<int64_t>>();
    ds.num_classes = m.at("num_classes").get<int64_t>();
    ds.classes = m.value("classes", std::vector<std::string>{});
    shards = m.at("shards").get<std::vector<std::string>>();
    ds.scale = m.value("scale", 0.18215);
    ds.flip = m.value("flip", false);
    caption_tokens = m.value("caption_tokens", int64_t{0});
    caption_channels = m.value("caption_channels", int64_t{0});
    ds.caption_encoder = m.value("caption_encoder", std::string());
  } catch (const nlohmann::json::exception& e) {
    fail("'", meta_path, "' is missing a field or has a wrong type: ", e.what());
  }
  if ((shape.size() != 3 && shape.size() != 4) || std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d <= 0; }))
    fail("'", meta_path, "': latent_shape must be [C, h, w] or [F, C, h, w], got ", shape_str(shape));
  if (ds.num_classes <= 0) fail("'", meta_path, "': num_classes must be positive");
  if (!ds.classes.empty() && int64_t(ds.classes.size()) != ds.num_classes)
    fail("'", meta_path, "': ", ds.classes.size(), " class names for num_classes ", ds.num_classes);
  if (num_samples <= 0 || shards.empty()) fail("'", meta_path, "': the dataset is empty");

  const bool captioned = caption_tokens > 0 || caption_channels > 0;
  if (captioned && (caption_tokens <= 0 || caption_channels <= 0))
    fail("'", meta_path, "': caption_tokens and caption_channels must both be positive");
  std::vector<torch::Tensor> lat, lab, cap, cmask;
  for (const auto& name : shards) {
    if (name.find('/') != std::string::npos) fail("'", meta_path, "': shard name '", name, "' must be a plain file name");
    const std::string path = dir + "/" + name;
    if (!is_regular_file(path)) fail("dataset shard '", path, "' is missing");
    auto sd = read_safetensors(path);
    const auto* l = sd.find("latents");
    const auto* y = sd.find("labels");
    if (!l || !y) fail("dataset shard '", path, "' must hold tensors 'latents' and 'labels'");
    if (!has_sample_shape(*l, shape))
      fail("dataset shard '", path, "': latents have shape ", shape_str(l->sizes().vec()), ", meta.json says [n] + ",
           shape_str(shape));
    if (y->dim() != 1 || y->size(0) != l->size(0))
      fail("dataset shard '", path, "': labels have shape ", shape_str(y->sizes().vec()), " for ", l->size(0), " latents");
    if (!torch::isFloatingType(l->scalar_type())) fail("dataset shard '", path, "': latents must be floating point");
    if (torch::isFloatingType(y->scalar_type())) fail("dataset shard '", path, "': labels must be integers");
    lat.push_back(l->to(torch::kFloat32).contiguous());
    lab.push_back(y->to(torch::kInt64).contiguous());
    if (captioned) read_shard_captions(sd, path, l->size(0), caption_tokens, caption_channels, cap, cmask);
  }
  // Copies out of the shard maps so the dataset owns ordinary, writable memory.
  ds.latents = torch::cat(lat, 0);
  ds.labels = torch::cat(lab, 0);
  if (captioned) {
    ds.captions = torch::cat(cap, 0);
    ds.caption_mask = torch::cat(cmask, 0);
    if (ds.caption_mask.ne(0).sum(1).min().item<int64_t>() == 0)
      fail("'", dir, "': a caption mask has no valid token");
  }
  if (ds.latents.size(0) != num_samples)
    fail("'", dir, "': shards hold ", ds.latents.size(0), " samples, meta.json says ", num_samples);
  if (ds.labels.min().item<int64_t>() < 0 || ds.labels.max().item<int64_t>() >= ds.num_classes)
    fail("'", dir, "': labels outside [0, ", ds.num_classes, ")");
  return ds;
}

LatentDatasetWriter::LatentDatasetWriter(std::string dir, Options opts, bool overwrite)
    : dir_(std::move(dir)), opts_(std::move(opts)) {
  if (opts_.latent_shape.size() != 3 && opts_.latent_shape.size() != 4)
    fail("dataset writer: latent shape must be [C, h, w] or [F, C, h, w]");
  if (opts_.classes.empty()) fail("dataset writer: no classes");
  if (opts_.shard_size <= 0) fail("shard size must be positive, got ", opts_.shard_size);
  std::error_code ec;
  if (fs::exists(dir_, ec) && !fs::is_directory(dir_, ec)) fail("output '", dir_, "' exists and is not a folder");
  fs::create_directories(dir_, ec);
  if (ec) fail("cannot create dataset folder '", dir_, "': ", ec.message());
  std::vector<fs::path> old;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (is_dataset_file(e.path().filename().string())) old.push_back(e.path());
  if (ec) fail("cannot list '", dir_, "': ", ec.message());
  if (!old.empty() && !overwrite)
    fail("'", dir_, "' already holds a dataset (", old.front().filename().string(), "); pass --overwrite or choose another folder");
  // meta.json goes first: an interrupted overwrite must not leave an openable mix of old and new.
  std::sort(old.begin(), old.end(), [](const fs::path& a, const fs::path& b) {
    return (a.filename() == "meta.json") > (b.filename() == "meta.json");
  });
  for (const auto& p : old) {
    fs::remove(p, ec);
    if (ec) fail("cannot remove old '", p.string(), "': ", ec.message());
  }
}

void LatentDatasetWriter::add(const torch::Tensor& latents, const torch::Tensor& labels, const torch::Tensor& captions,
                              const torch::Tensor& caption_mask) {
  if (finished_) fail("dataset writer: add after finish");
  const bool captioned = opts_.caption_tokens > 0;
  if (captioned != captions.defined() || captions.defined() != caption_mask.defined())
    fail("dataset writer: captions ", captioned ? "are required" : "were not announced", " for this dataset");
  if (captioned && (captions.dim() != 3 || captions.size(0) != latents.size(0) ||
                    captions.size(1) != opts_.caption_tokens || captions.size(2) != opts_.caption_channels ||
                    !caption_mask.sizes().equals({latents.size(0), opts_.caption_tokens})))
    fail("dataset writer: captions of shape ", shape_str(captions.sizes().vec()), " / mask ",
         shape_str(caption_mask.sizes().vec()), ", expected [n, ", opts_.caption_tokens, ", ", opts_.caption_channels,
         "] / [n, ", opts_.caption_tokens, "]");
  if (!has_sample_shape(latents, opts_.latent_shape))
    fail("dataset writer: latents of shape ", shape_str(latents.sizes().vec()), ", expected [n] + ",
         shape_str(opts_.latent_shape));
  if (labels.dim() != 1 || labels.size(0) != latents.size(0)) fail("dataset writer: one label per latent expected");
  auto l = latents.detach().to(torch::kCPU, torch::kFloat32);
  auto y = labels.detach().to(torch::kCPU, torch::kInt64);
  int64_t off = 0;
  while (off < l.size(0)) {
    const int64_t take = std::min(l.size(0) - off, opts_.shard_size - pending_);
    pending_latents_.push_back(l.narrow(0, off, take));
    pending_labels_.push_back(y.narrow(0, off, take));
    if (captioned) {
      pending_captions_.push_back(captions.detach().to(torch::kCPU, torch::kFloat32).narrow(0, off, take));
      pending_masks_.push_back(caption_mask.detach().to(torch::kCPU, torch::kInt64).narrow(0, off, take));
    }
    pending_ += take;
    off += take;
    if (pending_ == opts_.shard_size) flush();
  }
}

void LatentDatasetWriter::flush() {
  if (pending_ == 0) return;
  StateDict sd;
  sd.set("latents", torch::cat(pending_latents_, 0).contiguous());
  sd.set("labels", torch::cat(pending_labels_, 0).contiguous());
  if (!pending_captions_.empty()) {
    sd.set("captions", torch::cat(pending_captions_, 0).contiguous());
    sd.set("caption_mask", torch::cat(pending_masks_, 0).contiguous());
  }
  const std::string name = shard_name(shards_.size());
  write_safetensors(dir_ + "/" + name, sd);
  shards_.push_back(name);
  total_ += pending_;
  pending_ = 0;
  pending_latents_.clear();
  pending_labels_.clear();
  pending_captions_.clear();
  pending_masks_.clear();
}

int64_t LatentDatasetWriter::finish() {
  if (finished_) return total_;
  flush();
  if (total_ == 0) fail("dataset writer: no samples were added");
  nlohmann::json m;
  m["num_samples"] = total_;
  m["latent_shape"] = opts_.latent_shape;
  m["num_classes"] = opts_.classes.size();
  m["classes"] = opts_.classes;
  m["shards"] = shards_;
  m["scale"] = opts_.scale;
  m["flip"] = opts_.flip;
  m["image_size"] = opts_.image_size;
  m["seed"] = opts_.seed;
  if (opts_.caption_tokens > 0) {
    m["caption_tokens"] = opts_.caption_tokens;
    m["caption_channels"] = opts_.caption_channels;
    m["caption_encoder"] = opts_.caption_encoder;
  }
  // Class names come from folder names; invalid UTF-8 is replaced rather than failing at the end.
  const std::string text = m.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  AtomicFile f(dir_ + "/meta.json");
  f.write(text.data(), text.size());
  f.commit();
  finished_ = true;
  return total_;
}

}  // namespace sdit

#include "dist/sharded_sampling.h"

#include <filesystem>

#include "dist/shard.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace sdit::dist {
namespace {

namespace fs = std::filesystem;

std::string batch_file(const std::string& dir, int64_t first) {
  return (fs::path(dir) / ("images_" + std::to_string(first) + ".safetensors")).string();
}

// The samples of global batch [first, first + count) saved by an earlier run, if all ranks can see them.
torch::Tensor load_finished(const ShardedSampling& opt, const World& world, int64_t first, int64_t count) {
  if (opt.resume_dir.empty()) return {};
  const std::string path = batch_file(opt.resume_dir, first);
  const bool here = fs::is_regular_file(path);
  if (world.allreduce(here ? 1.0 : 0.0, Reduce::Min) == 0.0) return {};
  const auto sd = read_safetensors(path);
  const auto it = sd.metadata.find("request");
  if (it == sd.metadata.end() || it->second != opt.fingerprint)
    fail("'", path, "' was written by another sampling request (", it == sd.metadata.end() ? "?" : it->second,
         "); remove the folder ", opt.resume_dir, " or sample to another file");
  const auto& s = sd.at("samples");
  if (s.size(0) != count) fail("'", path, "' holds ", s.size(0), " images instead of ", count);
  return s;
}

void keep_finished(const ShardedSampling& opt, const World& world, int64_t first, const torch::Tensor& samples) {
  if (opt.resume_dir.empty()) return;
  std::string error;
  if (world.is_root()) {
    try {
      StateDict sd;
      sd.set("samples", samples.contiguous());
      sd.metadata["request"] = opt.fingerprint;
      fs::create_directories(opt.resume_dir);
      save_checkpoint(batch_file(opt.resume_dir, first), sd);
    } catch (const std::exception& e) {
      error = std::string("cannot keep the finished images in ") + opt.resume_dir + ": " + e.what();
    }
  }
  const auto v = world.agree_stop(error);
  if (v.stop) fail(v.reason);
}

SamplingResult per_image(Model& model, const SamplingRequest& req, const World& world, const ShardedSampling& opt,
                         const SamplingProgress& progress) {
  const int64_t n = req.samples(), G = req.batch_size > 0 ? req.batch_size : n;
  const int64_t H = req.height > 0 ? req.height : model.latent().height;
  const int64_t W = req.width > 0 ? req.width : model.latent().width;
  SamplingResult res;
  std::vector<torch::Tensor> batches;
  int64_t resumed = 0;
  for (int64_t first = 0; first < n; first += G) {
    const int64_t count = std::min(G, n - first);
    if (auto done = load_finished(opt, world, first, count); done.defined()) {
      batches.push_back(done);
      resumed += count;
      continue;
    }
    const Shard mine = shard_range(count, world.rank(), world.size());
    SamplingRequest sub = req;
    sub.keyed = true;
    sub.first_image = first + mine.begin;
    sub.batch_size = 0;
    if (req.cond.empty()) sub.num_samples = mine.size();
    else sub.cond = req.cond.narrow(first + mine.begin, mine.size());
    if (sub.uncond) sub.uncond = req.uncond->narrow(first + mine.begin, mine.size());
    torch::Tensor local = torch::empty(model.latent().shape(0, H, W));
    if (mine.size() > 0) {
      auto r = run_sampling(model, sub, progress);
      local = r.samples;
      res.grid_calls = r.grid_calls;
      res.density_description = r.density_description;
      res.visited_timesteps = r.visited_timesteps;
      res.steps = r.steps;
      res.mean_gmacs = r.mean_gmacs;
      res.seconds += r.seconds;
      res.runs += 1;
    }
    batches.push_back(world.all_gather_rows(local));
    keep_finished(opt, world, first, batches.back());
  }
  if (resumed > 0 && opt.on_message && world.is_root())
    opt.on_message("resumed " + std::to_string(resumed) + " finished images from " + opt.resume_dir);
  res.samples = torch::cat(batches, 0);
  return res;
}

SamplingResult dit_layout(Model& model, const SamplingRequest& req, const World& world,
                          const SamplingProgress& progress) {
  const auto& latent = model.latent();
  if (latent.cond != CondKind::ClassLabel) fail("--seed-mode dit draws class labels: this model is not class-conditional");
  const int64_t N = req.samples(), n = req.batch_size > 0 ? req.batch_size : 32, Wn = world.size();
  const int64_t G = n * Wn, iters = (N + G - 1) / G;
  SamplingRequest sub = req;
  sub.seed = req.seed * Wn + world.rank();
  sub.cond = {};
  sub.num_samples = iters * n;
  sub.batch_size = n;
  sub.after_noise = random_labels_after_noise(latent.num_classes);
  SamplingResult res = run_sampling(model, sub, progress);
  // Rank order [W, iters, n] -> sample_ddp.py's index order it·G + i·W + r, then the first N.
  auto interleave = [&](const torch::Tensor& rows) {
    auto all = world.all_gather_rows(rows);
    std::vector<int64_t> shape{Wn, iters, n};
    for (int64_t d = 1; d < all.dim(); ++d) shape.push_back(all.size(d));
    std::vector<int64_t> order{1, 2, 0};
    for (int64_t d = 3; d < static_cast<int64_t>(shape.size()); ++d) order.push_back(d);
    return all.reshape(shape).permute(order).reshape(all.sizes()).narrow(0, 0, N);
  };
  res.samples = interleave(res.samples);
  res.cond.labels = interleave(res.cond.labels);
  return res;
}

}  // namespace

SeedMode parse_seed_mode(const std::string& name) {
  if (name == "per-image") return SeedMode::PerImage;
  if (name == "dit") return SeedMode::Dit;
  fail("unknown seed mode '", name, "' (choose per-image or dit)");
}

SamplingResult sample_sharded(Model& model, const SamplingRequest& req, const World& world,
                              const ShardedSampling& opt, const SamplingProgress& progress) {
  if (opt.mode == SeedMode::Dit) return dit_layout(model, req, world, progress);
  return per_image(model, req, world, opt, progress);
}

}  // namespace sdit::dist

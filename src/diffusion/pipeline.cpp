#include "diffusion/pipeline.h"

#include <nlohmann/json.hpp>

#include <chrono>

#include "diffusion/density_schedule.h"
#include "diffusion/gaussian_diffusion.h"
#include "diffusion/samplers.h"
#include "models/flops.h"
#include "models/guidance.h"
#include "util/compat.h"
#include "util/error.h"

namespace sdit {

std::map<std::string, std::string> recommended_sampling(const Model& model) {
  std::map<std::string, std::string> out;
  auto it = model.metadata().find("sampling");
  if (it == model.metadata().end()) return out;
  try {
    auto j = nlohmann::json::parse(it->second);
    for (auto key : {"num_sampling_steps", "sampler", "density", "cfg_channels", "cfg_scale", "eta"})
      if (j.contains(key)) out[key] = j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
  } catch (const std::exception&) {
    out.clear();  // a malformed recommendation is ignored, never fatal
  }
  return out;
}

void apply_recommended(const Model& model, SamplingRequest& req, const std::set<std::string>& keep) {
  auto take = [&](const char* name) { return keep.count(name) == 0; };
  for (auto& [key, value] : recommended_sampling(model)) {
    if (key == "num_sampling_steps" && take("steps")) req.steps = value;
    if (key == "sampler" && take("sampler")) req.sampler = value;
    if (key == "density" && take("density")) req.density = value;
    if (key == "cfg_channels" && take("cfg_channels")) req.guided_channels = value == "all" ? -1 : 3;
    try {
      if (key == "cfg_scale" && take("cfg_scale")) req.cfg_scale = std::stod(value);
      if (key == "eta" && take("eta")) req.eta = std::stod(value);
    } catch (const std::exception&) {
      // a malformed recommendation is ignored, never fatal
    }
  }
}

SamplingResult run_sampling(Model& model, const SamplingRequest& req, const SamplingProgress& progress) {
  const auto& cfg = model.config();
  if (req.labels.empty()) fail("no class labels to sample");
  for (auto l : req.labels)
    if (l < 0 || l >= cfg.num_classes)
      fail("class label ", l, " is out of range: the model has ", cfg.num_classes, " classes (0..", cfg.num_classes - 1,
           ")");
  std::string density = req.density;
  if (!model.sparse() && !density.empty() && density != "full")
    fail("--density ", density, " needs a SparseDiT; this checkpoint is a dense DiT (make one with sparsedit convert)");
  if (density.empty()) density = model.sparse() ? default_density(cfg.tokens()) : "full";
  const auto sched = DensitySchedule::parse(density, cfg.grid());

  DiffusionOptions dopt;
  dopt.respacing = req.steps;
  dopt.learn_sigma = cfg.learn_sigma;
  GaussianDiffusion diffusion(dopt);
  SampleOptions sopt;
  sopt.sampler = req.sampler;
  sopt.eta = req.eta;
  const bool use_cfg = req.cfg_scale != 1.0;

  SamplingResult res;
  res.steps = diffusion.num_timesteps();
  res.visited_timesteps = diffusion.timestep_map();
  res.density_description = sched.describe();
  res.mean_gmacs = mean_gmacs(cfg, model.sparse() ? &model.spec().layout : nullptr, sched, res.visited_timesteps);

  torch::Tensor y_all;
  ModelFn fn = [&](const torch::Tensor& x, const torch::Tensor& t) {
    const int64_t side = sched.side_at(t[0].item<int64_t>());
    res.side_calls[side] += 1;
    BackboneFn f = [&](const torch::Tensor& xx, const torch::Tensor& tt, const torch::Tensor& yy) {
      return model.forward(xx, tt, yy, side);
    };
    if (!use_cfg) return f(x, t, y_all);
    return forward_with_cfg(f, x, t, y_all, req.cfg_scale, req.guided_channels, cfg.in_channels);
  };

  torch::NoGradGuard ng;
  torch::manual_seed(static_cast<uint64_t>(req.seed));
  const int64_t n = static_cast<int64_t>(req.labels.size());
  const int64_t chunk = req.batch_size > 0 ? req.batch_size : n;
  res.runs = (n + chunk - 1) / chunk;
  std::vector<torch::Tensor> cond;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = 0, run = 0; s < n; s += chunk, ++run) {
    const int64_t b = std::min(chunk, n - s);
    auto y = torch::tensor(std::vector<int64_t>(req.labels.begin() + s, req.labels.begin() + s + b), torch::kLong)
                 .to(req.device);
    // The reference order: z first, then one randn_like per step; each chunk is one such run.
    auto z = torch::randn({b, cfg.in_channels, cfg.input_size, cfg.input_size},
                          torch::TensorOptions().device(req.device));
    if (use_cfg) {
      z = torch::cat({z, z}, 0);
      y_all = torch::cat({y, torch::full({b}, cfg.num_classes, y.options())}, 0);
    } else {
      y_all = y;
    }
    sopt.on_step = [&](int64_t i, int64_t total) {
      if (progress) progress(run, res.runs, i, total);
    };
    auto out = sample_loop(diffusion, fn, z, sopt);
    cond.push_back(out.narrow(0, 0, b).to(torch::kCPU));
  }
  compat::cuda_synchronize(req.device);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  res.samples = torch::cat(cond, 0);
  return res;
}

}  // namespace sdit

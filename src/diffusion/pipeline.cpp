#include "diffusion/pipeline.h"

#include <nlohmann/json.hpp>

#include <chrono>

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/samplers.h"
#include "models/guidance.h"
#include "util/compat.h"
#include "util/error.h"

namespace sdit {

std::map<std::string, std::string> recommended_sampling(const Model& model) {
  std::map<std::string, std::string> out;
  auto it = model.metadata().find("sampling");
  if (it == model.metadata().end()) return out;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const std::exception&) {
    return out;  // apply_recommended reports it
  }
  if (!j.is_object()) return out;
  for (auto key : {"num_sampling_steps", "sampler", "density", "cfg_channels", "cfg_scale", "eta"})
    if (j.contains(key)) out[key] = j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
  return out;
}

std::vector<std::string> apply_recommended(const Model& model, SamplingRequest& req, const std::set<std::string>& keep) {
  std::vector<std::string> warnings;
  auto it = model.metadata().find("sampling");
  if (it != model.metadata().end() && recommended_sampling(model).empty() && !it->second.empty() && it->second != "{}")
    warnings.push_back("the checkpoint's recommended sampling settings are not a JSON object; using the defaults");
  auto take = [&](const char* name) { return keep.count(name) == 0; };
  auto number = [&](const std::string& key, const std::string& value, double& out) {
    try {
      size_t pos = 0;
      const double v = std::stod(value, &pos);
      if (pos != value.size()) throw std::invalid_argument(value);
      out = v;
    } catch (const std::exception&) {
      warnings.push_back("the checkpoint recommends " + key + " '" + value + "', which is not a number; using " +
                         std::to_string(out));
    }
  };
  for (auto& [key, value] : recommended_sampling(model)) {
    if (key == "num_sampling_steps" && take("steps")) req.steps = value;
    if (key == "sampler" && take("sampler")) req.sampler = value;
    if (key == "density" && take("density")) req.density = value;
    if (key == "cfg_channels" && take("cfg_channels")) {
      if (value == "all" || value == "3") req.guided_channels = value == "all" ? -1 : 3;
      else warnings.push_back("the checkpoint recommends cfg_channels '" + value + "' (not 3 or all); keeping " +
                              (req.guided_channels < 0 ? std::string("all") : std::string("3")));
    }
    if (key == "cfg_scale" && take("cfg_scale")) number(key, value, req.cfg_scale);
    if (key == "eta" && take("eta")) number(key, value, req.eta);
  }
  return warnings;
}

DensitySchedule sampling_schedule(const Model& model, const std::string& density_in, const Grid& dense) {
  std::string density = density_in;
  if (!model.sparse() && !density.empty() && density != "full")
    fail("--density ", density, " needs a SparseDiT; this checkpoint is a dense ", model.name(),
         " (make one with sparsedit convert)");
  if (density.empty()) density = model.sparse() ? kDefaultDensity : "full";
  return DensitySchedule::parse(density, dense);
}

double mean_gmacs(const Model& model, const DensitySchedule& sched, const std::vector<int64_t>& timesteps) {
  if (timesteps.empty()) fail("flops: no sampling timesteps to average over");
  if (!model.sparse() && !sched.is_full())
    fail("flops: density '", sched.spec(), "' needs a SparseDiT; a dense model is always full");
  if (model.latent().fixed_size && sched.dense() != model.grid())
    fail("flops: the density schedule was built for a ", sched.dense().str(), " grid but the model's token grid is ",
         model.grid().str());
  std::map<Grid, double> by_grid;
  double sum = 0.0;
  for (const int64_t t : timesteps) {
    const Grid g = sched.grid_at(static_cast<double>(t));  // range-checks t for dense models too
    auto it = by_grid.find(g);
    if (it == by_grid.end()) it = by_grid.emplace(g, model.flops(sched.dense(), g).total_macs).first;
    sum += it->second;
  }
  return sum / static_cast<double>(timesteps.size()) / 1e9;
}

SamplingResult run_sampling(Model& model, const SamplingRequest& req, const SamplingProgress& progress) {
  const LatentSpec& spec = model.latent();
  const int64_t n = req.samples();
  if (n <= 0) fail(spec.cond == CondKind::None ? "no samples to draw (--num-samples)" : "nothing to sample");
  if (spec.cond != CondKind::None) model.check_conditioning(req.cond, n);
  const int64_t H = req.height > 0 ? req.height : spec.height, W = req.width > 0 ? req.width : spec.width;
  const Grid dense = spec.grid(H, W);
  const auto sched = sampling_schedule(model, req.density, dense);

  DiffusionOptions dopt;
  dopt.respacing = req.steps;
  dopt.learn_sigma = spec.learn_sigma;
  GaussianDiffusion diffusion(dopt);
  SampleOptions sopt;
  sopt.sampler = req.sampler;
  sopt.eta = req.eta;
  // An unconditional model has nothing to guide: it samples without CFG whatever the scale.
  const bool use_cfg = req.cfg_scale != 1.0 && spec.cond != CondKind::None;
  const Conditioning uncond_all = !use_cfg ? Conditioning{} : req.uncond ? *req.uncond : model.null_conditioning(req.cond);

  SamplingResult res;
  res.steps = diffusion.num_timesteps();
  res.visited_timesteps = diffusion.timestep_map();
  res.density_description = sched.describe();
  res.mean_gmacs = mean_gmacs(model, sched, res.visited_timesteps);

  GuidanceOptions g;
  g.scale = req.cfg_scale;
  g.guided_channels = req.guided_channels;
  g.eps_channels = spec.channels;
  g.channel_axis = spec.channel_axis;
  Conditioning c_run;
  ModelFn fn = [&](const torch::Tensor& x, const torch::Tensor& t) {
    const Grid grid = sched.grid_at(t[0].item<double>());
    res.grid_calls[grid] += 1;
    DenoiseFn f = [&](const torch::Tensor& xx, const torch::Tensor& tt, const Conditioning& cc) {
      return model.forward(xx, tt, cc, grid);
    };
    return use_cfg ? forward_with_cfg(f, x, t, c_run, g) : f(x, t, c_run);
  };

  torch::NoGradGuard ng;
  torch::manual_seed(static_cast<uint64_t>(req.seed));
  const int64_t chunk = req.batch_size > 0 ? req.batch_size : n;
  res.runs = (n + chunk - 1) / chunk;
  std::vector<torch::Tensor> cond;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = 0, run = 0; s < n; s += chunk, ++run) {
    const int64_t b = std::min(chunk, n - s);
    const Conditioning c = req.cond.empty() ? Conditioning{} : req.cond.narrow(s, b).to(req.device);
    // The reference order: z first, then one randn_like per step; each chunk is one such run.
    auto z = torch::randn(spec.shape(b, H, W), torch::TensorOptions().device(req.device));
    if (use_cfg) {
      z = torch::cat({z, z}, 0);
      c_run = Conditioning::cat(c, uncond_all.narrow(s, b).to(req.device));
    } else {
      c_run = c;
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

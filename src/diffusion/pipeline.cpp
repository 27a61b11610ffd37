#include "diffusion/pipeline.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "diffusion/dpm_solver.h"
#include "diffusion/gaussian_diffusion.h"
#include "diffusion/samplers.h"
#include "models/guidance.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/keyed_rng.h"

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

AfterNoiseFn random_labels_after_noise(int64_t num_classes) {
  if (num_classes <= 0) fail("random class labels need a class-conditional model");
  return [num_classes](int64_t, int64_t rows, const torch::Device& device) {
    Conditioning c;
    c.labels = torch::randint(0, num_classes, {rows}, torch::TensorOptions().dtype(torch::kLong).device(device));
    return c;
  };
}

const std::vector<std::string>& pipeline_sampler_names() {
  static const std::vector<std::string> names = {"ddpm", "iddpm", "ddim", "dpm++2m", "dpm-solver"};
  return names;
}

namespace {

// x_T of the chunk of b images starting at image s of the request, on the request's device.
torch::Tensor initial_noise(const SamplingRequest& req, const std::vector<int64_t>& shape, int64_t s) {
  if (!req.keyed) return torch::randn(shape, torch::TensorOptions().device(req.device));
  const std::vector<int64_t> one(shape.begin() + 1, shape.end());
  const auto ids = sample_range(req.first_image + s, shape[0]);
  return KeyedDraws(static_cast<uint64_t>(req.seed), 0).randn(RngStream::Latent, ids, one).to(req.device);
}

// The keyed per-step noise of that chunk; a CFG batch gets the same noise in both halves.
std::function<torch::Tensor(const torch::Tensor&, int64_t)> keyed_step_noise(const SamplingRequest& req, int64_t s,
                                                                              int64_t b) {
  if (!req.keyed) return {};
  return [&req, s, b](const torch::Tensor& x, int64_t step) {
    const std::vector<int64_t> one(x.sizes().begin() + 1, x.sizes().end());
    auto n = KeyedDraws(static_cast<uint64_t>(req.seed), static_cast<uint64_t>(step))
                 .randn(RngStream::SamplerNoise, sample_range(req.first_image + s, b), one);
    if (x.size(0) == 2 * b) n = torch::cat({n, n}, 0);
    return n.to(x.device());
  };
}

// The run's conditioning, drawn right after its z: req.after_noise, or req.cond's rows; a family
// whose script draws labels after z anyway (Latte) consumes that draw so the step noise matches.
Conditioning run_conditioning(Model& model, const SamplingRequest& req, int64_t first, int64_t rows) {
  const LatentSpec& spec = model.latent();
  Conditioning c;
  if (req.after_noise) {
    c = req.after_noise(first, rows, req.device);
  } else {
    c = req.cond.empty() ? Conditioning{} : req.cond.narrow(first, rows).to(req.device);
    if (spec.cond == CondKind::ClassLabel && sampling_defaults(model.spec()).labels_after_noise)
      (void)torch::randint(0, spec.num_classes, {rows}, torch::TensorOptions().dtype(torch::kLong).device(req.device));
  }
  if (spec.cond != CondKind::None) model.check_conditioning(c, rows);
  return c;
}

// Classifier-free guidance of PixArt's DPM-Solver wrapper (docs/pixart.md §5.3): one forward of
// [uncond; cond] at the same time, eps = u + s·(c − u) on the guided channels (every eps channel
// by default), the conditional eps elsewhere; the learned variance is dropped.
torch::Tensor guided_eps_uncond_first(const torch::Tensor& out, int64_t eps_channels, int64_t axis, double scale,
                                      int64_t guided) {
  const int64_t n = out.size(0) / 2;
  auto eps = out.narrow(axis, 0, eps_channels);
  auto u = eps.narrow(0, 0, n), c = eps.narrow(0, n, n);
  const int64_t g = guided < 0 ? eps_channels : std::min(guided, eps_channels);
  auto mixed = u.narrow(axis, 0, g) + scale * (c.narrow(axis, 0, g) - u.narrow(axis, 0, g));
  return g == eps_channels ? mixed : torch::cat({mixed, c.narrow(axis, g, eps_channels - g)}, axis);
}

// The respaced Gaussian-diffusion samplers (ddpm = iddpm, ddim, dpm++2m) or PixArt's DPM-Solver:
// the timesteps a run visits, and one run from z over its conditioning rows.
struct SamplerPlan {
  std::unique_ptr<GaussianDiffusion> diffusion;
  std::unique_ptr<NoiseScheduleVP> dpm;
  int64_t dpm_steps = 0;
  int64_t steps = 0;
  std::vector<int64_t> visited;  // original timesteps (the integer part of DPM-Solver's fractional ones)
};

SamplerPlan plan_sampler(const SamplingRequest& req, const LatentSpec& spec) {
  SamplerPlan p;
  const auto& names = pipeline_sampler_names();
  if (std::find(names.begin(), names.end(), req.sampler) == names.end())
    fail("unknown sampler '", req.sampler, "' (choose ddpm, iddpm, ddim, dpm++2m or dpm-solver)");
  if (req.sampler == "dpm-solver") {
    size_t pos = 0;
    try {
      p.dpm_steps = std::stoll(req.steps, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos == 0 || pos != req.steps.size() || p.dpm_steps < 2)
      fail("dpm-solver takes a number of steps (at least 2), got '", req.steps, "'");
    p.dpm = std::make_unique<NoiseScheduleVP>(linear_betas(1000));
    p.steps = p.dpm_steps;
    for (const double t : dpm_solver_model_times(*p.dpm, p.dpm_steps))
      p.visited.push_back(static_cast<int64_t>(std::floor(t)));
    return p;
  }
  DiffusionOptions dopt;
  dopt.respacing = req.steps;
  dopt.learn_sigma = spec.learn_sigma;
  dopt.channel_axis = spec.channel_axis;
  p.diffusion = std::make_unique<GaussianDiffusion>(dopt);
  p.steps = p.diffusion->num_timesteps();
  p.visited = p.diffusion->timestep_map();
  return p;
}

}  // namespace

std::vector<int64_t> sampler_timesteps(const std::string& sampler, const std::string& steps) {
  SamplingRequest req;
  req.sampler = sampler;
  req.steps = steps;
  return plan_sampler(req, LatentSpec{}).visited;
}

namespace {

// One run of the plan's sampler from z: the model at the schedule's grid for each call (counted in
// res.grid_calls), guided as that sampler's reference guides ([cond; uncond] through DiT's
// forward_with_cfg for the respaced samplers, [uncond; cond] for DPM-Solver).
class PlanRunner {
 public:
  PlanRunner(Model& model, const SamplingRequest& req, const SamplerPlan& plan, const DensitySchedule& sched,
             SamplingResult& res, bool cfg)
      : model_(model), req_(req), plan_(plan), sched_(sched), res_(res), cfg_(cfg), spec_(model.latent()) {}

  // `noise`: the per-step noise of the stochastic samplers (keyed per image), empty for the stream's.
  torch::Tensor run(torch::Tensor z, const Conditioning& c, const Conditioning& u,
                    const std::function<void(int64_t, int64_t)>& on_step,
                    const std::function<torch::Tensor(const torch::Tensor&, int64_t)>& noise) {
    if (plan_.dpm) {
      c_run_ = cfg_ ? Conditioning::cat(u, c) : c;
      DpmSolverOptions dopt;
      dopt.steps = plan_.dpm_steps;
      dopt.on_step = on_step;
      EpsFn eps = [this](const torch::Tensor& x, const torch::Tensor& t) { return dpm_eps(x, t); };
      return dpm_solver_sample(*plan_.dpm, eps, z, dopt);
    }
    if (cfg_) z = torch::cat({z, z}, 0);
    c_run_ = cfg_ ? Conditioning::cat(c, u) : c;
    SampleOptions sopt;
    sopt.sampler = req_.sampler == "iddpm" ? "ddpm" : req_.sampler;  // IDDPM's p_sample_loop is DiT's ddpm
    sopt.eta = req_.eta;
    sopt.on_step = on_step;
    sopt.noise = noise;
    GuidanceOptions g;
    g.scale = req_.cfg_scale;
    g.guided_channels = req_.guided_channels;
    g.eps_channels = spec_.channels;
    g.channel_axis = spec_.channel_axis;
    ModelFn fn = [this, g](const torch::Tensor& x, const torch::Tensor& t) {
      const DenoiseFn f = at(t);
      return cfg_ ? forward_with_cfg(f, x, t, c_run_, g) : f(x, t, c_run_);
    };
    return sample_loop(*plan_.diffusion, fn, z, sopt);
  }

 private:
  DenoiseFn at(const torch::Tensor& t) {
    const Grid grid = sched_.grid_at(t[0].item<double>());
    res_.grid_calls[grid] += 1;
    Model* m = &model_;
    return [m, grid](const torch::Tensor& xx, const torch::Tensor& tt, const Conditioning& cc) {
      return m->forward(xx, tt, cc, grid);
    };
  }
  // DPM-Solver's noise prediction: uncond first, the same time for both halves, eps only.
  torch::Tensor dpm_eps(const torch::Tensor& x, const torch::Tensor& t) {
    const DenoiseFn f = at(t);
    if (!cfg_) return f(x, t, c_run_).narrow(spec_.channel_axis, 0, spec_.channels);
    return guided_eps_uncond_first(f(torch::cat({x, x}, 0), torch::cat({t, t}, 0), c_run_), spec_.channels,
                                   spec_.channel_axis, req_.cfg_scale, req_.guided_channels);
  }

  Model& model_;
  const SamplingRequest& req_;
  const SamplerPlan& plan_;
  const DensitySchedule& sched_;
  SamplingResult& res_;
  bool cfg_;
  const LatentSpec& spec_;
  Conditioning c_run_;
};

}  // namespace

SamplingResult run_sampling(Model& model, const SamplingRequest& req, const SamplingProgress& progress) {
  const LatentSpec& spec = model.latent();
  const int64_t n = req.samples();
  if (n <= 0) fail(spec.cond == CondKind::None ? "no samples to draw (--num-samples)" : "nothing to sample");
  if (spec.cond != CondKind::None && !req.after_noise) model.check_conditioning(req.cond, n);
  if (req.uncond && spec.cond != CondKind::None) model.check_conditioning(*req.uncond, n);
  const int64_t H = req.height > 0 ? req.height : spec.height, W = req.width > 0 ? req.width : spec.width;
  const Grid dense = spec.grid(H, W);
  const auto sched = sampling_schedule(model, req.density, dense);
  const SamplerPlan plan = plan_sampler(req, spec);
  // An unconditional model has nothing to guide: it samples without CFG whatever the scale.
  const bool use_cfg = req.cfg_scale != 1.0 && spec.cond != CondKind::None;

  SamplingResult res;
  res.steps = plan.steps;
  res.visited_timesteps = plan.visited;
  res.density_description = sched.describe();
  res.mean_gmacs = mean_gmacs(model, sched, res.visited_timesteps);
  PlanRunner runner(model, req, plan, sched, res, use_cfg);

  torch::NoGradGuard ng;
  torch::manual_seed(static_cast<uint64_t>(req.seed));
  const int64_t chunk = req.batch_size > 0 ? req.batch_size : n;
  res.runs = (n + chunk - 1) / chunk;
  std::vector<torch::Tensor> outs;
  std::vector<Conditioning> rows;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = 0, run = 0; s < n; s += chunk, ++run) {
    const int64_t b = std::min(chunk, n - s);
    // The reference order: z first, then any conditioning drawn after it (sample_ddp.py's y, Latte's
    // labels), then (ddpm, ddim) one randn_like per step; each chunk is one such run.
    auto z = initial_noise(req, spec.shape(b, H, W), s);
    const Conditioning c = run_conditioning(model, req, s, b);
    if (!c.empty()) rows.push_back(c.to(torch::kCPU));
    const Conditioning u = !use_cfg ? Conditioning{} : req.uncond ? req.uncond->narrow(s, b).to(req.device)
                                                                  : model.null_conditioning(c);
    auto out = runner.run(
        z, c, u,
        [&](int64_t i, int64_t total) {
          if (progress) progress(run, res.runs, i, total);
        },
        keyed_step_noise(req, s, b));
    outs.push_back(out.narrow(0, 0, b).to(torch::kCPU));
  }
  compat::cuda_synchronize(req.device);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  res.samples = torch::cat(outs, 0);
  for (const auto& r : rows) res.cond = res.cond.empty() ? r : Conditioning::cat(res.cond, r);
  return res;
}

}  // namespace sdit

#include "bench/bench.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include <torch/version.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "bench/gemm_limit.h"
#include "diffusion/density_schedule.h"
#include "diffusion/pipeline.h"
#include "diffusion/respace.h"
#include "io/checkpoint.h"
#include "models/guidance.h"
#include "models/model.h"
#include "util/compat.h"
#include "util/error.h"

namespace sdit {
namespace {

constexpr int64_t kDiffusionSteps = 1000;

// ---- CPU peak memory -------------------------------------------------------------------------

// Reads "VmHWM:   1234 kB" style fields of /proc/self/status; -1 when absent (non-Linux).
int64_t status_kb(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream is(line.substr(key.size() + 1));
    int64_t kb = -1;
    is >> kb;
    return kb;
  }
  return -1;
}

// Writing 5 to clear_refs (Linux >= 4.0) resets VmHWM to the current RSS, which turns the
// process-lifetime high-water mark into a per-row one. False when the kernel refuses. glibc keeps
// freed heap pages resident (the fp32 copy a model is built in before its dtype cast, a previous
// model), so they are handed back first; otherwise they would inflate every later row.
bool reset_cpu_peak() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// ---- models ----------------------------------------------------------------------------------

}  // namespace

// The family's training init, except that tensors it zeroes (adaLN-Zero, the output layer) get
// small random weights: zeros would make every block the identity, and the timed kernels would see
// degenerate (constant) activations, which is not what a trained model computes.
void randomize_weights(Model& m) {
  torch::NoGradGuard ng;
  m.init_weights();
  for (auto& p : m.module().parameters())
    if (p.dim() >= 2 && p.requires_grad() && !p.any().item<bool>()) torch::nn::init::normal_(p, 0.0, 0.02);
}

namespace {

// Owns the checkpoint (read once) and at most one built model: benchmarking XL at 512 px holds
// 2.7 GB of fp32 weights, so the previous model is freed before the next one is built, which also
// keeps the peak-memory column about one model.
class ModelPool {
 public:
  ModelPool(const BenchModelSource& src, const BenchOptions& opt) : src_(src), opt_(opt) {
    if (src_.ckpt.empty()) return;
    sd_ = native_state_dict(load_checkpoint(src_.ckpt));
    try {
      ckpt_spec_ = detect_spec(*sd_, src_.load);
    } catch (const Error& e) {
      fail("bench: ", src_.ckpt, ": ", e.what());
    }
  }

  // The checkpoint's latent side, or 0 for preset models (any size).
  int64_t fixed_input_size() const { return sd_ ? family(ckpt_spec_.family).latent(ckpt_spec_).height : 0; }

  // The family, config and layout a case runs (its schedule is filled in by plan_case).
  BenchPlan target(int64_t input_size, bool full_density) const {
    BenchPlan t;
    if (sd_) {
      t.spec = ckpt_spec_;
    } else {
      // A preset's `full` row is the dense model; any other density needs the SparseDiT of that size.
      SpecOverrides o;
      o.height = o.width = input_size;
      t.spec = family(src_.spec.family).apply_overrides(src_.spec, o);
      if (!full_density) t.spec.layout = src_.layout ? *src_.layout : default_layout(t.spec);
    }
    t.latent = family(t.spec.family).latent(t.spec);
    t.dense = t.latent.grid();
    return t;
  }

  Model& get(const BenchPlan& t) {
    const std::string key = t.spec.config.dump() + (t.spec.layout ? "/" + t.spec.layout->str() : "");
    if (current_ && key == key_) return *current_;
    current_.reset();
    torch::manual_seed(opt_.seed);
    if (sd_ && !src_.random_weights) {
      current_ = Model::from_state_dict(*sd_, src_.load);
    } else {
      current_ = Model::build(t.spec);
      randomize_weights(*current_);
    }
    current_->to(opt_.device, opt_.dtype);
    current_->train(false);
    key_ = key;
    return *current_;
  }

 private:
  const BenchModelSource& src_;
  const BenchOptions& opt_;
  std::optional<StateDict> sd_;
  ModelSpec ckpt_spec_;
  std::optional<Model> current_;
  std::string key_;
};

// ---- validation ------------------------------------------------------------------------------

BenchPlan plan_case(const ModelPool& pool, const BenchCase& c, const BenchOptions& opt) {
  if (c.input_size <= 0) fail("bench: sizes must be positive (got latent side ", c.input_size, ")");
  if (c.batch <= 0) fail("bench: --batch-size must be positive (got ", c.batch, ")");
  if (c.threads <= 0) fail("bench: --threads must be positive (got ", c.threads, ")");
  const int64_t fixed = pool.fixed_input_size();
  // pos_embed fixes a checkpoint's token grid, so it cannot be run at another size.
  if (fixed > 0 && c.input_size != fixed)
    fail("bench: the checkpoint has a ", fixed, "x", fixed, " latent but a size asked for gives ", c.input_size, "x",
         c.input_size);
  // The family depends on the density only for presets; parse once to know whether it is `full`.
  const BenchPlan probe = pool.target(c.input_size, true);
  DensitySchedule sched = [&] {
    try {
      return DensitySchedule::parse(c.density, probe.dense, kDiffusionSteps);
    } catch (const Error& e) {
      fail("bench: --density '", c.density, "': ", e.what());
    }
  }();
  BenchPlan p = pool.target(c.input_size, sched.is_full());
  p.sched = sched;
  if (!p.spec.sparse() && !sched.is_full())
    fail("bench: --density '", c.density, "' needs a SparseDiT, but the checkpoint holds a dense ", display_name(p.spec),
         " (it only runs `full`)");
  if (opt.train) train_intervals(p, c, opt);  // throws when the batch cannot cover the intervals
  return p;
}

}  // namespace

Conditioning bench_conditioning(const Model& model, int64_t batch, bool cfg, const torch::Device& device) {
  const LatentSpec& l = model.latent();
  Conditioning c;
  if (l.cond == CondKind::ClassLabel) c.labels = torch::randint(0, l.num_classes, {batch}, torch::kLong);
  if (l.cond == CondKind::Text) {
    c.context = torch::randn({batch, l.context_len, l.context_dim});
    c.context_mask = torch::ones({batch, l.context_len}, torch::kLong);
  }
  const auto& fam = family(model.spec().family);
  if (l.size_conditions && fam.size_conditions) {  // PixArt-MS: the micro-conditions of the model's own size
    const Conditioning s = fam.size_conditions(model.spec(), {l.height * l.vae_downscale, l.width * l.vae_downscale});
    c.img_hw = s.img_hw.expand({batch, -1}).contiguous();
    c.aspect_ratio = s.aspect_ratio.expand({batch, -1}).contiguous();
  }
  if (cfg && l.cond != CondKind::None) c = Conditioning::cat(c, model.null_conditioning(c));
  return c.to(device);
}

namespace {

// ---- timing ----------------------------------------------------------------------------------

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Distinct grids, most tokens first, with their step counts and GMACs; returns one timestep that
// uses each (the timestep value does not change the cost, but a real one keeps the inputs realistic).
std::vector<int64_t> visited_grids(BenchRow& row, const Model& model, const BenchPlan& plan,
                                   const std::vector<int64_t>& timesteps) {
  std::map<Grid, std::pair<int64_t, int64_t>> by_grid;
  for (const int64_t t : timesteps) {
    auto& e = by_grid[plan.sched.grid_at(static_cast<double>(t))];
    if (e.first++ == 0) e.second = t;
  }
  std::vector<int64_t> rep_t;
  for (const auto& [g, e] : by_grid) {
    row.grids.push_back(g);
    row.steps_per_side.push_back(e.first);
    rep_t.push_back(e.second);
    row.gmacs_per_side.push_back(model.flops(plan.dense, g).gmacs());
  }
  row.gmacs = mean_gmacs(model, plan.sched, timesteps);
  return rep_t;
}

// Warm-up (refusing non-finite outputs), then reps × one forward per grid, weighted by the steps
// that use each grid; fills the timing and memory fields of the row.
void time_forwards(BenchRow& row, const BenchOptions& opt, const std::function<torch::Tensor(size_t)>& forward) {
  torch::NoGradGuard ng;
  GemmShapes gemms;  // the products of one step, each grid weighted by its share of the steps
  for (size_t i = 0; i < row.grids.size(); ++i)
    for (int w = 0; w < std::max(opt.warmup, opt.gemm_limit ? 1 : 0); ++w) {
      torch::Tensor out;
      if (w == 0 && opt.gemm_limit)
        gemms.add(record_gemm_shapes([&] { out = forward(i); }),
                  static_cast<double>(row.steps_per_side[i]) / static_cast<double>(row.steps));
      else
        out = forward(i);
      if (w == 0 && !torch::isfinite(out).all().item<bool>())
        fail("bench: the random model produced non-finite outputs at ", row.grids[i].str(), " in ", row.dtype,
             "; timings of NaN arithmetic would not be representative");
    }
  compat::cuda_synchronize(opt.device);
  const bool per_row_peak = bench_reset_peak(opt);
  BenchProfile profile(opt);
  std::vector<std::vector<double>> side_ms(row.grids.size());
  for (int r = 0; r < opt.reps; ++r) {
    double weighted = 0.0;
    for (size_t i = 0; i < row.grids.size(); ++i) {
      compat::cuda_synchronize(opt.device);
      const double t0 = now_ms();
      forward(i);
      compat::cuda_synchronize(opt.device);
      const double ms = now_ms() - t0;
      side_ms[i].push_back(ms);
      weighted += ms * static_cast<double>(row.steps_per_side[i]);
    }
    row.ms_per_step_reps.push_back(weighted / static_cast<double>(row.steps));
  }
  profile.finish(row);
  bench_read_peak(row, opt, per_row_peak);
  for (const auto& v : side_ms) row.ms_per_side.push_back(mean_sd(v));
  row.ms_per_step = mean_sd(row.ms_per_step_reps);
  if (opt.gemm_limit) row.gemm_limit_gflops = measure_gemm_rate(gemms, opt.dtype, opt.device);
}

BenchRow measure(Model& model, const BenchPlan& plan, const BenchCase& c, const BenchOptions& opt,
                 const std::vector<int64_t>& timesteps, const std::string& model_name) {
  BenchRow row = bench_row_header(plan, c, opt, model_name);
  row.mode = "sample";
  row.steps = static_cast<int64_t>(timesteps.size());
  const auto rep_t = visited_grids(row, model, plan, timesteps);
  row.gmacs_per_image_step = row.gmacs * (opt.cfg ? 2.0 : 1.0);

  const int64_t fwd_batch = c.batch * (opt.cfg ? 2 : 1);
  const auto iopts = torch::TensorOptions().device(opt.device).dtype(torch::kLong);
  torch::manual_seed(opt.seed);
  const auto x = torch::randn(plan.latent.shape(fwd_batch, c.input_size, c.input_size)).to(opt.device, opt.dtype);
  const auto cond = bench_conditioning(model, c.batch, opt.cfg, opt.device);
  GuidanceOptions g;
  g.scale = opt.cfg_scale;
  g.eps_channels = plan.latent.channels;
  g.channel_axis = plan.latent.channel_axis;
  time_forwards(row, opt, [&](size_t i) {
    const auto t = torch::full({fwd_batch}, rep_t[i], iopts);
    const Grid grid = row.grids[i];
    if (!opt.cfg) return model.forward(x, t, cond, grid);
    // Sampling with guidance runs [cond; uncond] through one forward, then mixes the halves.
    DenoiseFn f = [&](const torch::Tensor& xx, const torch::Tensor& tt, const Conditioning& cc) {
      return model.forward(xx, tt, cc, grid);
    };
    return forward_with_cfg(f, x, t, cond, g);
  });
  std::vector<double> gflops, ips;
  for (const double ms : row.ms_per_step_reps) {
    gflops.push_back(2.0 * row.gmacs * static_cast<double>(fwd_batch) / (ms / 1000.0));
    ips.push_back(static_cast<double>(c.batch) / (ms / 1000.0 * static_cast<double>(row.steps)));
  }
  row.gflops_per_s = mean_sd(gflops);
  row.img_per_s = mean_sd(ips);
  return row;
}

}  // namespace

BenchRow bench_row_header(const BenchPlan& plan, const BenchCase& c, const BenchOptions& opt,
                          const std::string& model_name) {
  BenchRow row;
  row.model = model_name;
  row.family = display_name(plan.spec);
  row.layout = plan.spec.layout ? plan.spec.layout->str() : "";
  row.density = c.density;
  row.schedule = plan.sched.describe();
  row.device = opt.device.str();
  row.dtype = dtype_name(opt.dtype);
  row.image_size = c.input_size * plan.latent.vae_downscale;
  row.input_size = c.input_size;
  row.batch = c.batch;
  row.threads = c.threads;
  row.cfg = opt.cfg;
  row.reps = opt.reps;
  return row;
}

BenchProfile::BenchProfile(const BenchOptions& opt) {
  if (opt.profile) prof_ = std::make_unique<OpProfiler>();
}

void BenchProfile::finish(BenchRow& row) {
  if (!prof_) return;
  row.profile_classes = prof_->classes();
  row.profile_ops = prof_->ops();
  if (row.profile_ops.size() > 15) row.profile_ops.resize(15);
  prof_.reset();
}

bool bench_reset_peak(const BenchOptions& opt) {
  if (opt.device.is_cuda()) {
    compat::cuda_synchronize(opt.device);
    compat::cuda_reset_peak(opt.device);
    return true;
  }
  return reset_cpu_peak();
}

void bench_read_peak(BenchRow& row, const BenchOptions& opt, bool per_row) {
  if (opt.device.is_cuda()) {
    row.peak_mem_bytes = compat::cuda_peak_bytes(opt.device);
    row.mem_source = row.peak_mem_bytes >= 0 ? "cuda allocator peak" : "unavailable";
    return;
  }
  const int64_t kb = status_kb("VmHWM");
  row.peak_mem_bytes = kb >= 0 ? kb * 1024 : -1;
  row.mem_source = kb < 0 ? "unavailable" : per_row ? "process peak RSS (VmHWM)" : "process lifetime peak RSS";
}

namespace {

std::string case_label(const BenchModelSource& src, const BenchCase& c, const BenchOptions& opt) {
  std::ostringstream os;
  os << src.name << " latent " << c.input_size << " density " << c.density << " batch " << c.batch
     << (opt.cfg ? " (x2 cfg)" : "") << " threads " << c.threads << " " << opt.device.str() << " "
     << dtype_name(opt.dtype);
  return os.str();
}

}  // namespace

MeanSd mean_sd(const std::vector<double>& v) {
  MeanSd r;
  if (v.empty()) return r;
  double sum = 0.0;
  for (const double x : v) sum += x;
  r.mean = sum / static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0.0;
    for (const double x : v) ss += (x - r.mean) * (x - r.mean);
    r.sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return r;
}

std::vector<BenchRow> run_bench(const BenchModelSource& source, const std::vector<BenchCase>& cases,
                                const BenchOptions& options, const BenchLog& log) {
  if (cases.empty()) fail("bench: nothing to measure");
  if (options.reps < 1) fail("bench: --reps must be at least 1 (got ", options.reps, ")");
  if (options.warmup < 0) fail("bench: --warmup cannot be negative (got ", options.warmup, ")");
  const auto timesteps = space_timesteps(kDiffusionSteps, options.steps);

  ModelPool pool(source, options);
  // A latent side of 0 stands for the checkpoint's own size.
  std::vector<BenchCase> resolved = cases;
  for (auto& c : resolved)
    if (c.input_size == 0) c.input_size = pool.fixed_input_size();
  std::vector<BenchPlan> plans;
  if (options.train && options.cfg) fail("bench: --cfg applies to sampling; --train times optimisation steps");
  for (const auto& c : resolved) plans.push_back(plan_case(pool, c, options));

  std::vector<BenchRow> rows;
  for (size_t i = 0; i < cases.size(); ++i) {
    const BenchCase& c = resolved[i];
    if (log) log("[" + std::to_string(i + 1) + "/" + std::to_string(cases.size()) + "] " + case_label(source, c, options));
    Model& model = pool.get(plans[i]);
    torch::set_num_threads(c.threads);  // before the warm-up, which sizes OpenMP's thread pool
    try {
      if (options.train)
        rows.push_back(measure_train_step(model, plans[i], c, options, source.name));
      else
        rows.push_back(measure(model, plans[i], c, options, timesteps, source.name));
    } catch (const c10::Error& e) {
      // Kernel gaps (e.g. fp16 matmul on a CPU build) surface here; name the case they broke.
      fail("bench: ", case_label(source, c, options), ": libtorch failed: ", e.what_without_backtrace());
    }
  }
  attach_speedups(rows);
  return rows;
}

std::string bench_group(const BenchRow& r) {
  std::ostringstream os;
  os << r.mode << " | " << r.model << " | " << r.image_size << " px | batch " << r.batch << " | threads " << r.threads << " | "
     << r.device << " | " << r.dtype << " | cfg " << (r.cfg ? "on" : "off");
  return os.str();
}

void attach_speedups(std::vector<BenchRow>& rows) {
  std::map<std::string, const BenchRow*> full;
  for (const auto& r : rows)
    if (r.density == "full" && !full.count(bench_group(r))) full[bench_group(r)] = &r;
  for (auto& r : rows) {
    auto it = full.find(bench_group(r));
    if (it == full.end()) continue;
    r.speedup = it->second->ms_per_step.mean / r.ms_per_step.mean;
    r.gmacs_ratio = r.gmacs / it->second->gmacs;
  }
}

nlohmann::ordered_json bench_row_json(const BenchRow& r) {
  nlohmann::ordered_json j;
  j["mode"] = r.mode;
  j["model"] = r.model;
  j["family"] = r.family;
  j["layout"] = r.layout.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.layout);
  j["image_size"] = r.image_size;
  j["input_size"] = r.input_size;
  j["density"] = r.density;
  j["schedule"] = r.schedule;
  j["batch"] = r.batch;
  j["cfg"] = r.cfg;
  j["threads"] = r.threads;
  j["device"] = r.device;
  j["dtype"] = r.dtype;
  j["steps"] = r.steps;
  j["reps"] = r.reps;
  auto per_side = nlohmann::ordered_json::array();
  const bool train = r.mode == "train";
  for (size_t i = 0; i < r.grids.size(); ++i) {
    const Grid& g = r.grids[i];
    nlohmann::ordered_json e{{"side", g.square() ? nlohmann::ordered_json(g.h) : nlohmann::ordered_json(nullptr)},
                             {"grid", g.str()},
                             {train ? "samples" : "steps", r.steps_per_side[i]},
                             {"gmacs", r.gmacs_per_side[i]}};
    if (i < r.ms_per_side.size()) {
      e["ms"] = r.ms_per_side[i].mean;
      e["ms_sd"] = r.ms_per_side[i].sd;
    }
    per_side.push_back(e);
  }
  j["sides"] = per_side;
  j["ms_per_step"] = r.ms_per_step.mean;
  j["ms_per_step_sd"] = r.ms_per_step.sd;
  j["ms_per_step_reps"] = r.ms_per_step_reps;
  j["gmacs"] = r.gmacs;
  j["gmacs_per_image_step"] = r.gmacs_per_image_step;
  j["gflops_per_s"] = r.gflops_per_s.mean;
  j["gflops_per_s_sd"] = r.gflops_per_s.sd;
  if (r.gemm_limit_gflops) {
    j["gemm_limit_gflops"] = *r.gemm_limit_gflops;
    j["pct_gemm_limit"] = 100.0 * r.gflops_per_s.mean / *r.gemm_limit_gflops;
  }
  j["img_per_s"] = r.img_per_s.mean;
  j["img_per_s_sd"] = r.img_per_s.sd;
  if (train) {
    j["steps_per_s"] = r.steps_per_s.mean;
    j["steps_per_s_sd"] = r.steps_per_s.sd;
    j["ranks"] = r.ranks;
    j["comm_share"] = r.comm_share.mean;
    j["comm_share_sd"] = r.comm_share.sd;
  }
  j["peak_mem_bytes"] = r.peak_mem_bytes;
  j["mem_source"] = r.mem_source;
  if (!r.profile_classes.empty()) {
    auto list = [](const std::vector<OpTime>& v) {
      auto a = nlohmann::ordered_json::array();
      for (const auto& o : v) a.push_back({{"name", o.name}, {"calls", o.calls}, {"self_ms", o.self_ms}});
      return a;
    };
    j["profile"] = {{"classes", list(r.profile_classes)}, {"ops", list(r.profile_ops)}};
  }
  j["speedup"] = r.speedup ? nlohmann::ordered_json(*r.speedup) : nlohmann::ordered_json(nullptr);
  j["gmacs_ratio"] = r.gmacs_ratio ? nlohmann::ordered_json(*r.gmacs_ratio) : nlohmann::ordered_json(nullptr);
  return j;
}

std::string bench_machine() {
  std::string cpu = "unknown CPU";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  std::ostringstream s;
  s << cpu << ", " << std::thread::hardware_concurrency() << " logical cores, libtorch " << TORCH_VERSION_MAJOR << "."
    << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH << (at::hasMKLDNN() ? " with oneDNN" : "")
    << (torch::cuda::is_available() ? ", CUDA available" : "");
  return s.str();
}

std::string dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32: return "fp32";
    case torch::kBFloat16: return "bf16";
    case torch::kFloat16: return "fp16";
    default: return "other";
  }
}

torch::Dtype parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16" || name == "half") return torch::kFloat16;
  fail("invalid dtype '", name, "': use fp32, bf16 or fp16");
}

}  // namespace sdit

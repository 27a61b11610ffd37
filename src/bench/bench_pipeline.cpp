#include "bench/bench_pipeline.h"

#include <chrono>
#include <cstdio>
#include <sstream>

#include "bench/bench.h"
#include "bench/bench_text.h"
#include "diffusion/pipeline.h"
#include "models/model.h"
#include "models/t5.h"
#include "models/vae.h"
#include "util/error.h"
#include "util/memory.h"

namespace sdit {
namespace {

using Clock = std::chrono::steady_clock;

// Times fn as one stage; the peak is the process's high-water mark from the stage's start.
template <typename Fn>
PipelineStage timed(const std::string& name, Fn&& fn, const std::function<void(const std::string&)>& log) {
  reset_process_peak_rss();
  const auto t0 = Clock::now();
  fn();
  PipelineStage s{name, std::chrono::duration<double>(Clock::now() - t0).count(), process_peak_rss_bytes()};
  if (log) log(name + ": " + std::to_string(s.seconds) + " s");
  return s;
}

// The features of a 40-token prompt and of the empty negative prompt (EOS only), as sample -p feeds them.
std::pair<Conditioning, Conditioning> encode_pair(const PipelineBenchOptions& o, int64_t tokens,
                                                  std::vector<PipelineStage>& stages,
                                                  const std::function<void(const std::string&)>& log) {
  T5Config cfg = t5_preset(o.text_encoder);
  if (o.t5_layers > 0) cfg.num_layers = o.t5_layers;
  T5EncoderModel t5{nullptr};
  stages.push_back(timed("T5 weights", [&] {
    t5 = T5EncoderModel(cfg, torch::TensorOptions().dtype(o.t5_dtype));
    t5_fill_random(t5, o.seed);
  }, log));
  auto ids = torch::zeros({2, tokens}, torch::kLong), mask = torch::zeros({2, tokens}, torch::kLong);
  const int64_t n = std::min<int64_t>(40, tokens - 1);
  ids[0].narrow(0, 0, n).random_(3, 32000);
  ids[0][n] = 1, ids[1][0] = 1;
  mask[0].narrow(0, 0, n + 1).fill_(1), mask[1][0] = 1;
  torch::Tensor h;
  stages.push_back(timed("T5 encode", [&] {
    torch::NoGradGuard ng;
    h = t5->forward(ids, mask).to(torch::kFloat32);
  }, log));
  t5 = T5EncoderModel(nullptr);  // freed before any transformer is built
  Conditioning cond, uncond;
  cond.context = h.narrow(0, 0, 1), cond.context_mask = mask.narrow(0, 0, 1);
  uncond.context = h.narrow(0, 1, 1), uncond.context_mask = mask.narrow(0, 1, 1);
  return {cond, uncond};
}

}  // namespace

std::vector<PipelineBenchRow> run_pipeline_bench(const PipelineBenchOptions& o,
                                                 const std::function<void(const std::string&)>& log) {
  const Family& fam = family(o.spec.family);
  const LatentSpec latent = fam.latent(o.spec);
  if (latent.cond != CondKind::Text) fail("bench --e2e: ", display_name(o.spec), " is not a text-to-image model");
  std::vector<PipelineStage> t5_stages;
  auto [cond, uncond] = encode_pair(o, latent.context_len, t5_stages, log);
  if (cond.context.size(2) != latent.context_dim)
    fail("bench --e2e: ", o.text_encoder, " gives ", cond.context.size(2), "-channel features; the model takes ",
         latent.context_dim);
  const int64_t H = latent.height * latent.vae_downscale, W = latent.width * latent.vae_downscale;
  if (fam.size_conditions) {
    const Conditioning s = fam.size_conditions(o.spec, {H, W});
    cond.img_hw = uncond.img_hw = s.img_hw;
    cond.aspect_ratio = uncond.aspect_ratio = s.aspect_ratio;
  }
  std::vector<PipelineBenchRow> rows;
  for (const auto& density : o.densities) {
    PipelineBenchRow r;
    r.model = display_name(o.spec);
    r.density = density;
    r.image_h = H, r.image_w = W;
    r.stages = t5_stages;
    ModelSpec spec = o.spec;
    if (density != "full") {
      spec.layout = SparseLayout::default_for_depth(spec.config.value("depth", int64_t{0}));
      r.model = display_name(spec) + " " + spec.layout->str();
    }
    std::optional<Model> model;
    r.stages.push_back(timed("transformer weights", [&] {
      torch::manual_seed(o.seed);
      model = Model::build(spec);
      randomize_weights(*model);
    }, log));
    SamplingRequest req;
    req.cond = cond;
    req.uncond = uncond;  // the negative prompt's features (the empty prompt through T5)
    req.sampler = o.sampler;
    req.steps = o.steps;
    req.cfg_scale = o.cfg_scale;
    req.guided_channels = o.sampler == "dpm-solver" ? -1 : 3;
    req.density = density;
    req.seed = static_cast<int64_t>(o.seed);
    SamplingResult res;
    r.stages.push_back(timed("sampling", [&] { res = run_sampling(*model, req); }, log));
    r.steps = res.steps;
    r.schedule = res.density_description;
    model.reset();
    VAEConfig vc;
    if (!o.vae_channels.empty()) vc.block_out_channels = o.vae_channels, vc.norm_num_groups = 8;
    std::optional<AutoencoderKL> vae;
    r.stages.push_back(timed("VAE weights", [&] { vae = AutoencoderKL(vc); }, log));
    r.stages.push_back(timed("VAE decode", [&] {
      torch::NoGradGuard ng;
      (*vae)->decode_latents(res.samples);
    }, log));
    for (const auto& s : r.stages) {
      r.total_seconds += s.seconds;
      if (s.name.find("weights") == std::string::npos) r.compute_seconds += s.seconds;
    }
    rows.push_back(r);
  }
  return rows;
}

std::string pipeline_bench_markdown(const std::vector<PipelineBenchRow>& rows) {
  std::ostringstream os;
  os << "sparsedit bench --e2e: one image, random weights; seconds per stage (peak RSS GiB during the stage)\n\n"
     << "| model | density | image | steps |";
  if (rows.empty()) return os.str();
  for (const auto& s : rows[0].stages) os << " " << s.name << " |";
  os << " encode + sample + decode s |\n|---|---|---|---:|";
  for (size_t i = 0; i <= rows[0].stages.size(); ++i) os << "---:|";
  os << "\n";
  char buf[64];
  for (const auto& r : rows) {
    os << "| " << r.model << " | " << r.density << " | " << r.image_w << "x" << r.image_h << " | " << r.steps << " |";
    for (const auto& s : r.stages) {
      std::snprintf(buf, sizeof buf, " %.2f (%.2f) |", s.seconds, static_cast<double>(s.peak_rss_bytes) / (1 << 30));
      os << buf;
    }
    std::snprintf(buf, sizeof buf, " %.2f |\n", r.compute_seconds);
    os << buf;
  }
  return os.str();
}

nlohmann::ordered_json pipeline_bench_json(const std::vector<PipelineBenchRow>& rows) {
  auto arr = nlohmann::ordered_json::array();
  for (const auto& r : rows) {
    auto stages = nlohmann::ordered_json::array();
    for (const auto& s : r.stages)
      stages.push_back({{"name", s.name}, {"seconds", s.seconds}, {"peak_rss_bytes", s.peak_rss_bytes}});
    arr.push_back({{"mode", "e2e"}, {"model", r.model}, {"density", r.density}, {"schedule", r.schedule},
                   {"image_h", r.image_h}, {"image_w", r.image_w}, {"steps", r.steps}, {"stages", stages},
                   {"total_seconds", r.total_seconds}, {"compute_seconds", r.compute_seconds}});
  }
  return {{"rows", arr}};
}

}  // namespace sdit

// `sparsedit flops`: the analytic cost of a DiT or SparseDiT, per segment and averaged over the
// timesteps a sampler visits (a density schedule changes the sparse grid from step to step).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "diffusion/density_schedule.h"
#include "diffusion/respace.h"
#include "models/flops.h"
#include "io/checkpoint.h"
#include "models/config.h"
#include "util/error.h"

namespace sdit::cli {
namespace {

constexpr int64_t kDiffusionSteps = 1000;

struct FlopsOptions {
  std::string model, ckpt, layout, density, steps = "250";
  int64_t image_size = 0, latent_size = 0, num_heads = 0;
  bool sparse = false, json = false;
};

struct Resolved {
  std::string name;
  DiTConfig cfg;
  std::optional<SparseLayout> layout;  // set for a SparseDiT
};

Resolved resolve_model(const FlopsOptions& o) {
  if (o.model.empty() == o.ckpt.empty()) fail("flops: give exactly one of --model NAME or --ckpt FILE");
  if (o.image_size < 0 || o.latent_size < 0) fail("flops: sizes must be positive");
  if (o.image_size > 0 && o.latent_size == 0 && o.image_size % 8 != 0)
    fail("flops: --image-size ", o.image_size, " is not a multiple of 8 (the VAE downsamples by 8); ",
         "use --latent-size for other inputs");
  const int64_t wanted_input = o.latent_size > 0 ? o.latent_size : o.image_size / 8;

  Resolved r;
  if (!o.model.empty()) {
    r.name = o.model;
    r.cfg = dit_preset(o.model);
    if (wanted_input == 0) fail("flops: --model needs --image-size PX (or --latent-size L)");
    r.cfg.input_size = wanted_input;
    if (o.num_heads > 0) r.cfg.num_heads = o.num_heads;
  } else {
    r.name = o.ckpt;
    const StateDict sd = without_training_state(load_checkpoint(o.ckpt));
    const auto det = detect_from_weights(sd, o.num_heads > 0 ? std::optional<int64_t>(o.num_heads) : std::nullopt);
    r.cfg = det.config;
    // pos_embed fixes the token grid, so the checkpoint cannot be costed at another size.
    if (wanted_input > 0 && wanted_input != r.cfg.input_size)
      fail("flops: ", o.ckpt, " has a ", r.cfg.input_size, "x", r.cfg.input_size, " latent (", r.cfg.input_size * 8,
           " px) but the size asked for gives ", wanted_input);
    if (det.family == ModelFamily::SparseDiT) {
      if (!o.layout.empty() && SparseLayout::parse(o.layout, r.cfg.depth).str() != det.layout.str())
        fail("flops: --layout ", o.layout, " differs from the checkpoint's layout ", det.layout.str());
      r.layout = det.layout;
    }
  }
  if (r.cfg.input_size % r.cfg.patch_size != 0)
    fail("flops: latent size ", r.cfg.input_size, " is not a multiple of patch size ", r.cfg.patch_size);
  if (!o.layout.empty() && !o.sparse && !r.layout)
    fail("flops: --layout describes a SparseDiT; add --sparse (or pass a SparseDiT checkpoint)");
  if (o.sparse && !r.layout)
    r.layout = o.layout.empty() ? SparseLayout::default_for_depth(r.cfg.depth) : SparseLayout::parse(o.layout, r.cfg.depth);
  return r;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pad(const std::string& s, size_t w, bool left = false) {
  if (s.size() >= w) return s;
  return left ? s + std::string(w - s.size(), ' ') : std::string(w - s.size(), ' ') + s;
}

void run_flops(const FlopsOptions& o) {
  const Resolved r = resolve_model(o);
  const DiTConfig& cfg = r.cfg;
  const int64_t grid = cfg.grid();
  const SparseLayout* layout = r.layout ? &*r.layout : nullptr;
  if (!layout && !o.density.empty() && o.density != "full")
    fail("flops: --density needs a SparseDiT (--sparse, or a SparseDiT checkpoint)");
  const std::string spec = !o.density.empty() ? o.density : layout ? default_density(cfg.tokens()) : "full";
  const auto sched = DensitySchedule::parse(spec, grid, kDiffusionSteps);
  const auto timesteps = space_timesteps(kDiffusionSteps, o.steps);

  // One column per grid side the sampler actually visits, most tokens (data end) first.
  std::map<int64_t, int64_t, std::greater<>> steps_per_side;
  for (const int64_t t : timesteps) ++steps_per_side[layout ? sched.side_at(t) : grid];
  std::vector<int64_t> sides;
  std::vector<FlopsReport> reports;
  for (const auto& [s, n] : steps_per_side) {
    sides.push_back(s);
    reports.push_back(layout ? sparse_flops(cfg, *layout, s) : dense_flops(cfg));
  }
  const double mean = mean_gmacs(cfg, layout, sched, timesteps);
  const double dense = dense_flops(cfg).total_macs / 1e9;

  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = r.name;
    j["family"] = layout ? "SparseDiT" : "DiT";
    j["layout"] = layout ? nlohmann::ordered_json(layout->str()) : nlohmann::ordered_json(nullptr);
    j["input_size"] = cfg.input_size;
    j["patch_size"] = cfg.patch_size;
    j["hidden_size"] = cfg.hidden_size;
    j["depth"] = cfg.depth;
    j["tokens"] = cfg.tokens();
    j["density"] = sched.spec();
    j["schedule"] = sched.describe();
    j["sampling_steps"] = timesteps.size();
    j["sides"] = sides;
    std::vector<int64_t> counts;
    std::vector<double> totals;
    for (size_t c = 0; c < sides.size(); ++c) {
      counts.push_back(steps_per_side[sides[c]]);
      totals.push_back(reports[c].total_macs / 1e9);
    }
    j["steps_per_side"] = counts;
    j["gmacs_per_side"] = totals;
    auto segs = nlohmann::ordered_json::array();
    for (size_t i = 0; i < reports[0].segments.size(); ++i) {
      std::vector<double> per_side;
      for (const auto& rep : reports) per_side.push_back(rep.segments[i].macs / 1e9);
      segs.push_back({{"name", reports[0].segments[i].name},
                      {"blocks", reports[0].segments[i].blocks},
                      {"gmacs_per_side", per_side}});
    }
    j["segments"] = segs;
    j["gmacs"] = mean;
    j["dense_gmacs"] = dense;
    std::cout << j.dump(2) << "\n";
    return;
  }

  std::cout << r.name << ": " << (layout ? "SparseDiT " + layout->str() : std::string("DiT")) << ", latent "
            << cfg.input_size << "x" << cfg.input_size << " (" << cfg.input_size * 8 << " px), patch "
            << cfg.patch_size << ", " << grid << "x" << grid << " = " << cfg.tokens() << " tokens, hidden "
            << cfg.hidden_size << ", depth " << cfg.depth << "\n";
  if (layout) std::cout << "density " << sched.describe() << "\n";
  std::cout << "GMACs of one forward for one sample (multiply-accumulates, as DiT reports GFLOPs)\n\n";

  const size_t name_w = 18, col_w = 17;
  std::cout << pad("segment", name_w, true) << pad("blocks", 7);
  for (const int64_t s : sides) std::cout << pad(std::to_string(s) + "x" + std::to_string(s), col_w);
  std::cout << "\n";
  for (size_t i = 0; i < reports[0].segments.size(); ++i) {
    const auto& seg = reports[0].segments[i];
    std::cout << pad(seg.name, name_w, true) << pad(seg.blocks ? std::to_string(seg.blocks) : "", 7);
    for (const auto& rep : reports)
      std::cout << pad(fmt("%.3f", rep.segments[i].macs / 1e9) + fmt(" %5.1f%%", 100.0 * rep.segments[i].macs / rep.total_macs), col_w);
    std::cout << "\n";
  }
  std::cout << pad("total", name_w, true) << pad("", 7);
  for (const auto& rep : reports) std::cout << pad(fmt("%.2f", rep.total_macs / 1e9) + "       ", col_w);
  std::cout << "\n" << pad("sampling steps", name_w, true) << pad("", 7);
  for (const int64_t s : sides) std::cout << pad(std::to_string(steps_per_side[s]) + "       ", col_w);
  std::cout << "\n\nmean over " << timesteps.size() << " sampling steps: " << fmt("%.2f", mean)
            << " GMACs per forward per sample (twice that per step with classifier-free guidance)";
  if (layout) std::cout << "; dense DiT " << fmt("%.2f", dense) << " (" << fmt("%+.1f%%", 100.0 * (mean / dense - 1.0)) << ")";
  std::cout << "\n";
}

}  // namespace

void register_flops(CLI::App& app) {
  auto opts = std::make_shared<FlopsOptions>();
  auto* cmd = app.add_subcommand("flops", "Analytic GMACs of a DiT or SparseDiT, per segment and per sampling run");
  auto* model = cmd->add_option("--model", opts->model, "Published config: DiT-S/2 ... DiT-XL/8");
  auto* ckpt = cmd->add_option("--ckpt", opts->ckpt, "Checkpoint to read the config from (a SparseDiT one implies --sparse)");
  model->excludes(ckpt);
  cmd->add_option("--image-size", opts->image_size, "Image side in pixels (latent = image / 8)");
  cmd->add_option("--latent-size", opts->latent_size, "Latent side, overriding image-size / 8");
  cmd->add_flag("--sparse", opts->sparse, "Cost the SparseDiT built from this DiT");
  cmd->add_option("--layout", opts->layout, "SparseDiT layout P:SxG,N,R,D:T (default: by depth, 2:4x1,3,1,1:2 for XL)");
  cmd->add_option("--density", opts->density,
                  "full | fixed:S | range:RMIN,RMAX | sides:a,b,c,d | per-step:RMIN,RMAX (default range:0.61,0.86)");
  cmd->add_option("--num-sampling-steps", opts->steps, "Respacing of the 1000 steps: N, N1,N2,... or ddimN")
      ->capture_default_str();
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of the table");
  cmd->add_option("--num-heads", opts->num_heads, "Head count for checkpoints whose width has no default");
  cmd->callback([opts] { run_flops(*opts); });
}

}  // namespace sdit::cli

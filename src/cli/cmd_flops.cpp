// `sparsedit flops`: the analytic cost of a model of any family, dense or SparseDiT, per segment and
// averaged over the timesteps a sampler visits (a density schedule changes the sparse grid from
// step to step).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "diffusion/density_schedule.h"
#include "diffusion/pipeline.h"
#include "io/checkpoint.h"
#include "models/registry.h"
#include "util/error.h"
#include "util/strings.h"

namespace sdit::cli {
namespace {

constexpr int64_t kDiffusionSteps = 1000;

struct FlopsOptions {
  std::string model, ckpt, layout, density, steps, sampler, temporal_pools;  // steps/sampler empty: the family's
  std::vector<std::string> layouts;  // --layout, repeatable: several compare layouts
  int64_t image_size = 0, latent_size = 0, num_heads = 0, frames = 0;
  double target = 56.0;  // the FLOPs cut the comparison marks: SparseDiT's video claim
  bool sparse = false, json = false;
};

struct Resolved {
  std::string name;
  ModelSpec spec;
  LatentSpec latent;
};

// The latent side asked for: --latent-size, else --image-size over the VAE downscale.
int64_t wanted_latent(const FlopsOptions& o, const LatentSpec& l) {
  if (o.image_size < 0 || o.latent_size < 0) fail("flops: sizes must be positive");
  if (o.latent_size > 0) return o.latent_size;
  if (o.image_size == 0) return 0;
  if (o.image_size % l.vae_downscale != 0)
    fail("flops: --image-size ", o.image_size, " is not a multiple of ", l.vae_downscale,
         " (the VAE downsamples by ", l.vae_downscale, "); use --latent-size for other inputs");
  return o.image_size / l.vae_downscale;
}

Resolved resolve_model(const FlopsOptions& o) {
  if (o.model.empty() == o.ckpt.empty()) fail("flops: give exactly one of --model NAME or --ckpt FILE");
  Resolved r;
  if (!o.model.empty()) {
    r.name = o.model;
    r.spec = preset_spec(o.model);
    const int64_t side = wanted_latent(o, family(r.spec.family).latent(r.spec));
    if (side == 0) fail("flops: --model needs --image-size PX (or --latent-size L)");
    SpecOverrides ov;
    ov.height = ov.width = side;
    if (o.num_heads > 0) ov.num_heads = o.num_heads;
    if (o.frames > 0) ov.frames = o.frames;
    r.spec = family(r.spec.family).apply_overrides(r.spec, ov);
  } else {
    r.name = o.ckpt;
    LoadOptions lo;
    if (o.num_heads > 0) lo.num_heads = o.num_heads;
    lo.heads_required = false;  // heads do not change the MACs
    r.spec = detect_spec(native_state_dict(load_checkpoint(o.ckpt)), lo);
    const LatentSpec l = family(r.spec.family).latent(r.spec);
    // pos_embed fixes the token grid, so the checkpoint cannot be costed at another size.
    const int64_t side = wanted_latent(o, l);
    if (side > 0 && l.fixed_size && side != l.height)
      fail("flops: ", o.ckpt, " has a ", l.height, "x", l.width, " latent but the size asked for gives ", side);
    if (o.frames > 0 && o.frames != l.frames)
      fail("flops: ", o.ckpt, " has ", l.frames, " frame(s); --frames ", o.frames, " cannot change that");
    if (r.spec.layout && !o.layout.empty() &&
        SparseLayout::parse(o.layout, r.spec.layout->depth()).str() != r.spec.layout->str())
      fail("flops: --layout ", o.layout, " differs from the checkpoint's layout ", r.spec.layout->str());
  }
  r.latent = family(r.spec.family).latent(r.spec);
  const int64_t depth = r.spec.config.value("depth", int64_t{0});
  if (!o.layout.empty() && !o.sparse && !r.spec.layout)
    fail("flops: --layout describes a SparseDiT; add --sparse (or pass a SparseDiT checkpoint)");
  if (o.sparse && !r.spec.layout)
    r.spec.layout = o.layout.empty() ? default_layout(r.spec) : SparseLayout::parse(o.layout, depth);
  return r;
}

// One column per sparse grid the sampler actually visits, most tokens (data end) first.
struct Table {
  std::vector<Grid> grids;
  std::vector<int64_t> steps;
  std::vector<FlopsReport> reports;
  double mean = 0, dense = 0;
};

Table compute(const Resolved& r, const DensitySchedule& sched, const std::vector<int64_t>& timesteps) {
  const Family& f = family(r.spec.family);
  const Grid dense = r.latent.grid();
  std::map<Grid, int64_t> per_grid;
  for (const int64_t t : timesteps) ++per_grid[sched.grid_at(static_cast<double>(t))];
  Table tb;
  double sum = 0;
  for (const auto& [g, n] : per_grid) {
    tb.grids.push_back(g);
    tb.steps.push_back(n);
    tb.reports.push_back(f.flops(r.spec, dense, g));
    sum += tb.reports.back().gmacs() * static_cast<double>(n);
  }
  tb.mean = sum / static_cast<double>(timesteps.size());
  ModelSpec dense_spec = r.spec;
  dense_spec.layout.reset();
  tb.dense = f.flops(dense_spec, dense, dense).gmacs();
  return tb;
}

void print_json(const Resolved& r, const DensitySchedule& sched, const std::vector<int64_t>& timesteps, const Table& tb) {
  nlohmann::ordered_json j;
  const Grid dense = r.latent.grid();
  j["model"] = r.name;
  j["family"] = display_name(r.spec);
  j["layout"] = r.spec.layout ? nlohmann::ordered_json(r.spec.layout->str()) : nlohmann::ordered_json(nullptr);
  j["input_size"] = r.latent.height;
  j["patch_size"] = r.latent.patch;
  j["hidden_size"] = r.spec.config.value("hidden_size", int64_t{0});
  j["depth"] = r.spec.config.value("depth", int64_t{0});
  j["tokens"] = dense.tokens();
  j["density"] = sched.spec();
  j["schedule"] = sched.describe();
  j["sampling_steps"] = timesteps.size();
  auto sides = nlohmann::ordered_json::array();
  for (const auto& g : tb.grids) sides.push_back(g.square() && g.frames == 1 ? nlohmann::ordered_json(g.h)
                                                                             : nlohmann::ordered_json(g.str()));
  j["sides"] = sides;
  j["steps_per_side"] = tb.steps;
  std::vector<double> totals;
  for (const auto& rep : tb.reports) totals.push_back(rep.gmacs());
  j["gmacs_per_side"] = totals;
  auto segs = nlohmann::ordered_json::array();
  for (size_t i = 0; i < tb.reports[0].segments.size(); ++i) {
    std::vector<double> per_side;
    for (const auto& rep : tb.reports) per_side.push_back(rep.segments[i].macs / 1e9);
    segs.push_back({{"name", tb.reports[0].segments[i].name},
                    {"blocks", tb.reports[0].segments[i].blocks},
                    {"gmacs_per_side", per_side}});
  }
  j["segments"] = segs;
  j["gmacs"] = tb.mean;
  j["dense_gmacs"] = tb.dense;
  std::cout << j.dump(2) << "\n";
}

std::string pad(const std::string& s, size_t w, bool left = false) {
  if (s.size() >= w) return s;
  return left ? s + std::string(w - s.size(), ' ') : std::string(w - s.size(), ' ') + s;
}

void print_table(const Resolved& r, const DensitySchedule& sched, const std::vector<int64_t>& timesteps,
                 const Table& tb) {
  const Grid dense = r.latent.grid();
  std::cout << r.name << ": " << describe_line(r.spec) << ", " << dense.str() << " = " << dense.tokens() << " tokens\n";
  if (r.spec.layout) std::cout << "density " << sched.describe() << "\n";
  std::cout << "GMACs of one forward for one sample (multiply-accumulates, as DiT reports GFLOPs)\n\n";
  const size_t name_w = 18, col_w = 17;
  std::cout << pad("segment", name_w, true) << pad("blocks", 7);
  for (const auto& g : tb.grids) std::cout << pad(g.str(), col_w);
  std::cout << "\n";
  for (size_t i = 0; i < tb.reports[0].segments.size(); ++i) {
    const auto& seg = tb.reports[0].segments[i];
    std::cout << pad(seg.name, name_w, true) << pad(seg.blocks ? std::to_string(seg.blocks) : "", 7);
    for (const auto& rep : tb.reports)
      std::cout << pad(fmt("%.3f", rep.segments[i].macs / 1e9) + fmt(" %5.1f%%", 100.0 * rep.segments[i].macs / rep.total_macs),
                       col_w);
    std::cout << "\n";
  }
  std::cout << pad("total", name_w, true) << pad("", 7);
  for (const auto& rep : tb.reports) std::cout << pad(fmt("%.2f", rep.gmacs()) + "       ", col_w);
  std::cout << "\n" << pad("sampling steps", name_w, true) << pad("", 7);
  for (const int64_t n : tb.steps) std::cout << pad(std::to_string(n) + "       ", col_w);
  std::cout << "\n\nmean over " << timesteps.size() << " sampling steps: " << fmt("%.2f", tb.mean)
            << " GMACs per forward per sample (twice that per step with classifier-free guidance)";
  if (r.spec.layout)
    std::cout << "; dense " << fmt("%.2f", tb.dense) << " (" << fmt("%+.1f%%", 100.0 * (tb.mean / tb.dense - 1.0)) << ")";
  std::cout << "\n";
}

// The timesteps the family's default sampler visits (DiT: 250 IDDPM steps; PixArt: 20 DPM-Solver),
// or those of --sampler / --steps.
std::vector<int64_t> run_timesteps(const FlopsOptions& o, const ModelSpec& spec) {
  const SamplingDefaults d = sampling_defaults(spec);
  return sampler_timesteps(o.sampler.empty() ? d.sampler : o.sampler, o.steps.empty() ? d.steps : o.steps);
}

// Several layouts and/or temporal pools: one row each, mean GMACs over the schedule against the dense
// model, and whether the cut reaches --target (LATTE's question: which layouts reach the paper's −56 %).
void print_comparison(const FlopsOptions& o, const std::vector<std::string>& layouts, const std::vector<int64_t>& pools) {
  const std::string base = !o.density.empty() ? o.density : kDefaultDensity;
  bool header = false;
  for (const auto& layout : layouts)
    for (const int64_t k : pools) {
      FlopsOptions one = o;
      one.layout = layout;
      one.sparse = true;
      const Resolved r = resolve_model(one);
      const auto sched = DensitySchedule::parse(with_temporal_pool(base, k), r.latent.grid(), kDiffusionSteps);
      const auto timesteps = run_timesteps(o, r.spec);
      const Table tb = compute(r, sched, timesteps);
      if (!header) {
        std::cout << r.name << ": dense " << fmt("%.2f", tb.dense) << " GMACs per forward per sample, " << base
                  << " over " << timesteps.size() << " sampling steps\n\n"
                  << "| layout | temporal pool | sparse grids | GMACs | FLOPs | reaches " << fmt("-%g%%", o.target)
                  << " |\n|---|---:|---|---:|---:|:---:|\n";
        header = true;
      }
      std::string grids;
      for (const auto& g : tb.grids) grids += (grids.empty() ? "" : ", ") + g.str();
      const double cut = 100.0 * (1.0 - tb.mean / tb.dense);
      std::cout << "| " << r.spec.layout->str() << " | " << k << " | " << grids << " | " << fmt("%.1f", tb.mean) << " | "
                << fmt("%+.1f%%", -cut) << " | " << (cut >= o.target ? "yes" : "no") << " |\n";
    }
}

void run_flops(const FlopsOptions& o_in) {
  FlopsOptions o = o_in;
  if (o.layouts.size() == 1) o.layout = o.layouts[0];
  std::vector<int64_t> pools = {1};
  if (!o.temporal_pools.empty()) pools = parse_int_list(o.temporal_pools, "--temporal-pool");
  for (const int64_t k : pools)
    if (k < 1) fail("flops: --temporal-pool must be positive, got ", k);
  if (o.layouts.size() > 1 || pools.size() > 1) {
    if (o.json) fail("flops: --json prints one model; compare layouts without it");
    print_comparison(o, o.layouts.empty() ? std::vector<std::string>{""} : o.layouts, pools);
    return;
  }
  const Resolved r = resolve_model(o);
  if (!r.spec.layout && ((!o.density.empty() && o.density != "full") || pools[0] > 1))
    fail("flops: --density and --temporal-pool need a SparseDiT (--sparse, or a SparseDiT checkpoint)");
  const std::string spec = !o.density.empty() ? o.density : r.spec.layout ? kDefaultDensity : "full";
  const auto sched = DensitySchedule::parse(with_temporal_pool(spec, pools[0]), r.latent.grid(), kDiffusionSteps);
  const auto timesteps = run_timesteps(o, r.spec);
  const Table tb = compute(r, sched, timesteps);
  if (o.json) print_json(r, sched, timesteps, tb);
  else print_table(r, sched, timesteps, tb);
}

}  // namespace

void register_flops(CLI::App& app) {
  auto opts = std::make_shared<FlopsOptions>();
  auto* cmd = app.add_subcommand("flops", "Analytic GMACs of a model (dense or SparseDiT), per segment and per sampling run");
  auto* model = cmd->add_option("--model", opts->model, "Published config: " + all_presets());
  auto* ckpt = cmd->add_option("-m,--ckpt", opts->ckpt, "Checkpoint to read the config from (a SparseDiT one implies --sparse)");
  model->excludes(ckpt);
  cmd->add_option("--image-size", opts->image_size, "Image side in pixels (latent = image / the VAE's downscale)");
  cmd->add_option("--latent-size", opts->latent_size, "Latent side, overriding --image-size");
  cmd->add_flag("--sparse", opts->sparse, "Cost the SparseDiT built from this model");
  cmd->add_option("--layout", opts->layouts,
                  "SparseDiT layout P:SxG,N,R,D:T (default: the family's by depth, 2:4x1,3,1,1:2 for XL); "
                  "repeat it to compare layouts");
  cmd->add_option("--frames", opts->frames, "Video frames for --model (Latte: 16)");
  cmd->add_option("--temporal-pool", opts->temporal_pools,
                  "Video SparseDiT: pool the frames K:1 too (density /tK); a list K1,K2 compares them");
  cmd->add_option("--target", opts->target, "FLOPs cut in % a comparison marks as reached")->capture_default_str();
  cmd->add_option("--density", opts->density,
                  "full | fixed:S | fixed:HxW | range:RMIN,RMAX | sides:a,b,c,d | per-step:RMIN,RMAX "
                  "(default range:0.61,0.86)");
  cmd->add_option("--num-sampling-steps,--steps", opts->steps,
                  "Respacing of the 1000 steps: N, N1,N2,... or ddimN; dpm-solver: N (default: the family's, DiT 250, "
                  "PixArt 20)");
  cmd->add_option("--sampler", opts->sampler, "Sampler whose timesteps are averaged over (default: the family's, "
                  "DiT ddpm, PixArt dpm-solver)");
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of the table");
  cmd->add_option("--num-heads", opts->num_heads, "Head count for checkpoints whose width has no default");
  cmd->callback([opts] { run_flops(*opts); });
}

}  // namespace sdit::cli

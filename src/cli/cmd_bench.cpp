// `sparsedit bench`: wall-clock cost of DiT and SparseDiT sampling forwards, llama-bench style —
// one row per image size × density × batch × threads, then one summary line per group comparing
// each density with the group's `full` row in analytic FLOPs and in measured time.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/dist_flags.h"
#include "diffusion/density_schedule.h"
#include "bench/bench.h"
#include "bench/bench_pipeline.h"
#include "bench/bench_text.h"
#include "models/registry.h"
#include "models/t5_load.h"
#include "util/error.h"
#include "util/strings.h"

namespace sdit::cli {
namespace {

struct BenchArgs {
  std::string model, ckpt, layout, image_sizes, latent_sizes, batches = "1", threads, steps = "250";
  std::string device = "cpu", dtype;  // empty: fp32 (DiT), bf16 and fp32 (text encoders)
  std::vector<std::string> densities;
  std::string train_intervals = "stages";
  bool random_weights = false, cfg = false, json = false, csv = false, md = false, quiet = false, train = false;
  bool e2e = false;  // text-to-image end to end (bench/bench_pipeline.h)
  std::string t5_dtype = "bf16", text_encoder = "t5-v1_1-xxl";
  int64_t t5_layers = 0;
  CLI::Option* steps_opt = nullptr;
  bool profile = false;
  bool no_gemm_limit = false;
  int reps = 3, warmup = 1;
  int64_t num_heads = 0, hidden_size = 0, depth = 0, patch_size = 0, frames = 0, temporal_pool = 0;
  uint64_t seed = 0;
  DistFlags dist;
};

std::string pm(const MeanSd& m, const char* f) { return fmt(f, m.mean) + " ± " + fmt(f, m.sd); }

// Four significant digits of the mean, and the sd to the same decimal place (img/s of a 250-step
// run can be 0.0003, where a fixed "%.1f" would print nothing).
std::string pm_sig(const MeanSd& m) {
  const double mag = m.mean != 0.0 ? std::floor(std::log10(std::fabs(m.mean))) : 0.0;
  const int decimals = static_cast<int>(std::max(0.0, 3.0 - mag));
  char f[16];
  std::snprintf(f, sizeof f, "%%.%df", decimals);
  return pm(m, f);
}

BenchModelSource resolve_source(const BenchArgs& a) {
  if (a.model.empty() == a.ckpt.empty()) fail("bench: give exactly one of --model NAME or --ckpt FILE");
  BenchModelSource s;
  s.random_weights = a.random_weights;
  if (a.num_heads < 0 || a.hidden_size < 0 || a.depth < 0 || a.patch_size < 0)
    fail("bench: --num-heads, --hidden-size, --depth and --patch-size must be positive");
  if (a.num_heads > 0) s.load.num_heads = a.num_heads;
  const bool custom = a.hidden_size > 0 || a.depth > 0 || a.patch_size > 0;
  if (!a.ckpt.empty()) {
    if (custom || !a.layout.empty() || a.frames > 0)
      fail("bench: --hidden-size/--depth/--patch-size/--layout/--frames shape a --model; a checkpoint has its own");
    s.name = a.ckpt;
    s.ckpt = a.ckpt;
    return s;
  }
  // No weights ship with the binary, so a preset can only be timed with random ones; say so
  // rather than silently benchmarking noise as if it were a trained model.
  if (!a.random_weights)
    fail("bench: --model ", a.model, " has no weights; add --random-weights (timings do not depend on the values), "
         "or bench a checkpoint with --ckpt");
  s.spec = preset_spec(a.model);
  s.name = a.model;
  SpecOverrides o;
  if (a.hidden_size > 0) o.hidden_size = a.hidden_size;
  if (a.depth > 0) o.depth = a.depth;
  if (a.patch_size > 0) o.patch_size = a.patch_size;
  if (a.num_heads > 0) o.num_heads = a.num_heads;
  if (a.frames > 0) o.frames = a.frames;
  s.spec = family(s.spec.family).apply_overrides(s.spec, o);
  if (custom) {
    std::ostringstream os;
    os << a.model << " (hidden " << s.spec.config.value("hidden_size", 0) << ", depth " << s.spec.config.value("depth", 0)
       << ", heads " << s.spec.config.value("num_heads", 0) << ", patch " << s.spec.config.value("patch_size", 0) << ")";
    s.name = os.str();
  }
  if (!a.layout.empty()) s.layout = SparseLayout::parse(a.layout, s.spec.config.value("depth", int64_t{0}));
  return s;
}

std::vector<int64_t> latent_sides(const BenchArgs& a, const BenchModelSource& src) {
  if (!a.image_sizes.empty() && !a.latent_sizes.empty()) fail("bench: give --image-size or --latent-size, not both");
  if (!a.latent_sizes.empty()) return parse_int_list(a.latent_sizes, "--latent-size");
  if (a.image_sizes.empty()) {
    if (!a.ckpt.empty()) return {0};  // the checkpoint's own size
    fail("bench: --model needs --image-size PX[,PX] (or --latent-size L)");
  }
  const int64_t down = a.ckpt.empty() ? family(src.spec.family).latent(src.spec).vae_downscale : 8;
  std::vector<int64_t> out;
  for (const int64_t px : parse_int_list(a.image_sizes, "--image-size")) {
    if (px <= 0 || px % down != 0)
      fail("bench: --image-size ", px, " is not a positive multiple of ", down, " (the VAE downsamples by ", down,
           "); use --latent-size");
    out.push_back(px / down);
  }
  return out;
}

// Sampling: "10²: 812.3, 6²: 455.0" (ms per forward); training: "10²×64, 9²×64" (micro-batches).
std::string grid_label(const Grid& g) { return g.square() && g.frames == 1 ? std::to_string(g.h) + "²" : g.str(); }

std::string sides_cell(const BenchRow& r) {
  std::string s;
  for (size_t i = 0; i < r.grids.size(); ++i) {
    s += (i ? ", " : "") + grid_label(r.grids[i]);
    s += i < r.ms_per_side.size() ? ": " + fmt("%.1f", r.ms_per_side[i].mean) : "×" + std::to_string(r.steps_per_side[i]);
  }
  return s;
}

std::string mib(int64_t bytes) { return bytes < 0 ? "-" : fmt("%.0f", static_cast<double>(bytes) / (1024.0 * 1024.0)); }

// The achieved rate as a share of the GEMM limit, with the limit itself ("71% of 194").
std::string pct_of_limit(const BenchRow& r) {
  if (!r.gemm_limit_gflops || *r.gemm_limit_gflops <= 0) return "-";
  return fmt("%.0f%%", 100.0 * r.gflops_per_s.mean / *r.gemm_limit_gflops) + " of " +
         fmt("%.0f", *r.gemm_limit_gflops);
}

void print_markdown(const std::vector<BenchRow>& rows, const BenchOptions& o) {
  const auto& r0 = rows.front();
  const bool train = o.train;
  if (train)
    std::cout << "sparsedit bench --train: optimisation steps (forward + backward + AdamW, no EMA) on random data; "
              << "a SparseDiT runs one micro-batch per timestep interval at its grid side; " << o.warmup
              << " warm-up + " << o.reps << " timed step(s), mean ± sd over reps\n"
              << "GMACs: forward per sample, batch-weighted (GFLOP/s counts backward as 2 forwards); peak MiB: "
              << r0.mem_source << " during the timed steps, weights included\n\n";
  else
    std::cout << "sparsedit bench: " << r0.steps << " sampling steps (respaced from 1000), CFG "
              << (o.cfg ? "on (each forward runs 2 × batch: [cond; uncond])" : "off") << ", " << o.warmup
              << " warm-up + " << o.reps << " timed forward(s) per grid side, mean ± sd over reps\n"
              << "ms/forward per grid side s² (tokens per SDTM); ms/step weights them by the steps using each side; "
              << "GMACs per forward per sample (FLOPs counter); peak MiB: " << r0.mem_source
              << " during the timed forwards, weights included\n"
              << "% GEMM limit: GFLOP/s ÷ the rate of the forward's own matrix products (same shapes, dtype, "
              << "threads) timed alone in this run; realisation: speed-up × FLOPs ratio (1 = every FLOP saved "
              << "shows in wall time)\n\n";
  std::cout << "machine: " << bench_machine() << "\n\n";
  std::cout << "| model | size | family | density | batch | threads | device | dtype | "
            << (train ? "micro-batches | ms/train step | steps/s | samples/s | ranks | comm %"
                      : "ms/forward by side | ms/step | img/s")
            << " | GMACs | GFLOP/s | % GEMM limit | peak MiB | speed-up | realisation |\n"
            << "|---|---:|---|---|---:|---:|---|---|---|---:|---:|" << (train ? "---:|---:|---:|" : "")
            << "---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    std::cout << "| " << r.model << " | " << r.image_size << " | " << r.family << " | " << r.density << " | " << r.batch
              << " | " << r.threads << " | " << r.device << " | " << r.dtype << " | " << sides_cell(r) << " | "
              << pm(r.ms_per_step, "%.1f") << " | ";
    if (train) std::cout << pm_sig(r.steps_per_s) << " | ";
    std::cout << pm_sig(r.img_per_s) << " | ";
    if (train) std::cout << r.ranks << " | " << pm(MeanSd{100 * r.comm_share.mean, 100 * r.comm_share.sd}, "%.1f") << " | ";
    std::cout << fmt(r.gmacs >= 10 ? "%.2f" : "%.4g", r.gmacs) << " | " << pm(r.gflops_per_s, "%.1f") << " | "
              << pct_of_limit(r) << " | " << mib(r.peak_mem_bytes) << " | "
              << (r.speedup ? fmt("%.2f", *r.speedup) + "×" : "-") << " | "
              << (r.speedup && r.gmacs_ratio ? fmt("%.2f", *r.speedup * *r.gmacs_ratio) : "-") << " |\n";
  }

  // One line per group: every non-full density against the group's full row.
  std::cout << "\n";
  std::map<std::string, std::vector<const BenchRow*>> groups;
  std::vector<std::string> order;
  for (const auto& r : rows) {
    const auto g = bench_group(r);
    if (!groups.count(g)) order.push_back(g);
    groups[g].push_back(&r);
  }
  for (const auto& g : order) {
    const BenchRow* full = nullptr;
    for (const auto* r : groups[g])
      if (r->density == "full") full = r;
    std::cout << g << ": ";
    if (!full) {
      std::cout << "no `full` row to compare with\n";
      continue;
    }
    const char* g_fmt = full->gmacs >= 10 ? "%.2f" : "%.4g";
    std::cout << "full " << fmt(g_fmt, full->gmacs) << " GMACs, " << fmt("%.1f", full->ms_per_step.mean) << " ms/step";
    for (const auto* r : groups[g]) {
      if (r == full || !r->speedup) continue;
      std::cout << "; " << r->density << " " << fmt(g_fmt, r->gmacs) << " GMACs ("
                << fmt("%+.1f%%", 100.0 * (*r->gmacs_ratio - 1.0)) << " FLOPs), " << fmt("%.2f", *r->speedup)
                << "× wall (" << (train ? "steps/s " : "img/s ") << fmt("%+.0f%%", 100.0 * (*r->speedup - 1.0)) << ")";
    }
    std::cout << "\n";
  }
}

// Per row: self time per op class over the timed repetitions, then the ops that took the most.
void print_profiles(const std::vector<BenchRow>& rows) {
  for (const auto& r : rows) {
    if (r.profile_classes.empty()) continue;
    double total = 0;
    for (const auto& c : r.profile_classes) total += c.self_ms;
    std::cout << "\nprofile: " << r.model << " " << r.density << " batch " << r.batch << " " << r.dtype << " ("
              << r.reps << " timed rep(s), " << fmt("%.1f", total) << " ms of op self time)\n\n"
              << "| op class | calls | self ms | share |\n|---|---:|---:|---:|\n";
    for (const auto& c : r.profile_classes)
      std::cout << "| " << c.name << " | " << c.calls << " | " << fmt("%.1f", c.self_ms) << " | "
                << fmt("%.1f%%", 100.0 * c.self_ms / total) << " |\n";
    std::cout << "\n| op | calls | self ms |\n|---|---:|---:|\n";
    for (const auto& o : r.profile_ops)
      std::cout << "| " << o.name << " | " << o.calls << " | " << fmt("%.1f", o.self_ms) << " |\n";
  }
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (const char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void print_csv(const std::vector<BenchRow>& rows) {
  std::cout << "mode,model,family,layout,image_size,input_size,density,batch,cfg,threads,device,dtype,steps,reps,"
               "ms_per_side,ms_per_step,ms_per_step_sd,gmacs,gmacs_per_image_step,gflops_per_s,gflops_per_s_sd,"
               "img_per_s,img_per_s_sd,steps_per_s,peak_mem_bytes,mem_source,speedup,gmacs_ratio,gemm_limit_gflops\n";
  auto num = [](double v) { return fmt("%.6g", v); };
  for (const auto& r : rows) {
    std::string sides;
    for (size_t i = 0; i < r.grids.size(); ++i)
      sides += (i ? ";" : "") + r.grids[i].str() + ":" +
               (i < r.ms_per_side.size() ? num(r.ms_per_side[i].mean) : "x" + std::to_string(r.steps_per_side[i]));
    std::cout << r.mode << "," << csv_field(r.model) << "," << r.family << "," << csv_field(r.layout) << "," << r.image_size << "," << r.input_size
              << "," << csv_field(r.density) << "," << r.batch << "," << (r.cfg ? 1 : 0) << "," << r.threads << ","
              << r.device << "," << r.dtype << "," << r.steps << "," << r.reps << "," << sides << ","
              << num(r.ms_per_step.mean) << "," << num(r.ms_per_step.sd) << "," << num(r.gmacs) << ","
              << num(r.gmacs_per_image_step) << "," << num(r.gflops_per_s.mean) << "," << num(r.gflops_per_s.sd) << ","
              << num(r.img_per_s.mean) << "," << num(r.img_per_s.sd) << ","
              << (r.mode == "train" ? num(r.steps_per_s.mean) : "") << "," << r.peak_mem_bytes << ","
              << csv_field(r.mem_source) << "," << (r.speedup ? num(*r.speedup) : "") << ","
              << (r.gmacs_ratio ? num(*r.gmacs_ratio) : "") << ","
              << (r.gemm_limit_gflops ? num(*r.gemm_limit_gflops) : "") << "\n";
  }
}

// Text encoders have their own row (bench/bench_text.h): seconds per encode of a PixArt CFG pair (each
// image's prompt + the negative prompt, --batch-size images) at 120 tokens, and peak memory.
void run_text_encoder(const BenchArgs& a) {
  if (!a.random_weights) fail("bench: --model ", a.model, " has no weights; add --random-weights");
  TextBenchOptions t;
  t.model = a.model;
  t.batch = 2 * parse_int_list(a.batches, "--batch-size").front();
  t.num_layers = a.depth;
  t.reps = a.reps;
  t.warmup = a.warmup;
  t.seed = a.seed;
  if (!a.threads.empty()) t.threads = static_cast<int>(parse_int_list(a.threads, "--threads").front());
  if (!a.dtype.empty()) {
    t.dtypes.clear();
    std::stringstream ss(a.dtype);
    for (std::string d; std::getline(ss, d, ',');) t.dtypes.push_back(parse_t5_dtype(d));
  }
  TextBenchLog log;
  if (!a.quiet) log = [](const std::string& m) { std::fprintf(stderr, "bench %s\n", m.c_str()); };
  const auto rows = run_text_encoder_bench(t, log);
  if (a.json) std::cout << text_bench_json(rows).dump(2) << "\n";
  else if (a.csv) std::cout << text_bench_csv(rows);
  else std::cout << text_bench_markdown(rows, t);
}

// --e2e: T5 encode, the sampling steps (the family's sampler; dense and each --density), the VAE decode.
void run_e2e(const BenchArgs& a, const BenchModelSource& source) {
  if (!a.random_weights || a.model.empty()) fail("bench --e2e: give --model NAME --random-weights");
  PipelineBenchOptions p;
  const auto sides = latent_sides(a, source);
  if (sides.size() != 1) fail("bench --e2e: give one --image-size");
  SpecOverrides ov;
  ov.height = ov.width = sides.front();
  p.text_encoder = a.text_encoder;
  ov.context_dim = t5_preset(a.text_encoder).d_model;  // 4096 for PixArt's XXL; smaller encoders for tests
  p.spec = family(source.spec.family).apply_overrides(source.spec, ov);
  const SamplingDefaults d = sampling_defaults(p.spec);
  p.sampler = d.sampler;
  p.steps = a.steps_opt && a.steps_opt->count() > 0 ? a.steps : d.steps;
  p.cfg_scale = d.cfg_scale;
  if (!a.densities.empty()) p.densities = a.densities;
  p.t5_dtype = parse_t5_dtype(a.t5_dtype);
  p.t5_layers = a.t5_layers;
  p.seed = a.seed;
  if (!a.threads.empty()) torch::set_num_threads(static_cast<int>(parse_int_list(a.threads, "--threads").front()));
  std::function<void(const std::string&)> log;
  if (!a.quiet) log = [](const std::string& m) { std::fprintf(stderr, "bench e2e %s\n", m.c_str()); };
  const auto rows = run_pipeline_bench(p, log);
  if (a.json) std::cout << pipeline_bench_json(rows).dump(2) << "\n";
  else std::cout << pipeline_bench_markdown(rows);
}

void run(const BenchArgs& a) {
  a.dist.relaunch_if_asked();
  if (static_cast<int>(a.json) + static_cast<int>(a.csv) + static_cast<int>(a.md) > 1)
    fail("bench: give at most one of --json, --csv, --md");
  if (a.model.rfind("t5", 0) == 0) return run_text_encoder(a);
  if (a.e2e) return run_e2e(a, resolve_source(a));
  const BenchModelSource source = resolve_source(a);

  BenchOptions o;
  o.device = parse_device(a.device);
  o.dtype = parse_dtype(a.dtype.empty() ? "fp32" : a.dtype);
  o.cfg = a.cfg;
  o.reps = a.reps;
  o.warmup = a.warmup;
  o.steps = a.steps;
  o.seed = a.seed;
  o.train = a.train;
  o.train_intervals = a.train_intervals;
  o.profile = a.profile;
  torch::Device dev = o.device;
  o.world = a.dist.connect(dev);
  o.device = dev;
  if (o.world.is_distributed() && !o.train) fail("bench: ranks (--nproc, torchrun) time training steps; add --train");
  o.gemm_limit = !a.no_gemm_limit;

  const auto sides = latent_sides(a, source);
  std::vector<int64_t> threads;
  if (a.threads.empty()) threads = {static_cast<int64_t>(torch::get_num_threads())};
  else threads = parse_int_list(a.threads, "--threads");
  const auto batches = parse_int_list(a.batches, "--batch-size");
  std::vector<std::string> densities = a.densities;
  if (densities.empty()) densities = {"full", kDefaultDensity};  // the paper's headline comparison
  for (auto& d : densities)
    if (d != "full") d = with_temporal_pool(d, a.temporal_pool);

  std::vector<BenchCase> cases;
  for (const int64_t s : sides)
    for (const auto& d : densities)
      for (const int64_t b : batches)
        for (const int64_t t : threads) {
          if (t <= 0 || t > 4096) fail("bench: --threads must be between 1 and 4096 (got ", t, ")");
          cases.push_back({s, d, b, static_cast<int>(t)});
        }

  BenchLog log;
  if (!a.quiet) log = [](const std::string& m) { std::fprintf(stderr, "bench %s\n", m.c_str()); };
  if (!o.world.is_root()) log = nullptr;
  const auto rows = run_bench(source, cases, o, log);
  if (!o.world.is_root()) return;  // rank 0 reports

  if (a.json) {
    auto arr = nlohmann::ordered_json::array();
    for (const auto& r : rows) arr.push_back(bench_row_json(r));
    nlohmann::ordered_json j;
    j["machine"] = bench_machine();
    j["rows"] = arr;
    std::cout << j.dump(2) << "\n";
  } else if (a.csv) {
    print_csv(rows);
  } else {
    print_markdown(rows, o);
    print_profiles(rows);
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* c = app.add_subcommand("bench", "Time DiT / SparseDiT sampling forwards per size, density, batch and threads");
  auto* model = c->add_option("--model", a->model,
                              "Published config (" + all_presets() + "), or a text encoder t5-v1_1-xxl (needs --random-weights)");
  auto* ckpt = c->add_option("-m,--ckpt", a->ckpt, "Checkpoint to bench (a dense one only runs `full`)");
  model->excludes(ckpt);
  c->add_flag("--random-weights", a->random_weights,
              "Random weights: `full` runs the dense DiT, other densities the SparseDiT of the same size");
  c->add_option("--image-size", a->image_sizes, "Image sides in pixels, comma-separated (latent = image / 8)");
  c->add_option("--latent-size", a->latent_sizes, "Latent sides, comma-separated, instead of --image-size");
  c->add_option("--density", a->densities,
                "Repeatable: full | fixed:S | range:RMIN,RMAX | sides:a,b,c,d | per-step:RMIN,RMAX "
                "(default: full and range:0.61,0.86)");
  c->add_option("--batch-size", a->batches, "Images per step, comma-separated")->capture_default_str();
  c->add_option("-t,--threads", a->threads, "CPU threads, comma-separated (default: libtorch's)");
  c->add_option("--reps", a->reps, "Timed repetitions per row")->capture_default_str();
  c->add_option("--warmup", a->warmup, "Untimed forwards per grid side before timing")->capture_default_str();
  a->steps_opt = c->add_option("--num-sampling-steps", a->steps,
                                "Respacing of the 1000 steps: N, N1,N2,... or ddimN (--e2e: the family's, PixArt 20)")
                      ->capture_default_str();
  c->add_option("--device", a->device, "cpu | cuda | cuda:N")->capture_default_str();
  c->add_option("--dtype", a->dtype, "fp32 | bf16 | fp16 (model and inputs are cast; default fp32; t5-*: bf16,fp32)");
  c->add_flag("--cfg", a->cfg, "Classifier-free guidance: each forward runs twice the batch");
  c->add_flag("--train", a->train,
              "Time optimisation steps (forward + backward + AdamW) instead of sampling forwards; batch = global batch");
  c->add_option("--train-intervals", a->train_intervals,
                "SparseDiT micro-batches per step: stages | K | 0,a,...,1000 (as sparsedit train)")
      ->capture_default_str();
  c->add_flag("--profile", a->profile, "Time every op during the timed reps and print self time per op class");
  c->add_flag("--no-gemm-limit", a->no_gemm_limit,
              "Skip timing the forward's matrix products alone (the % GEMM limit column)");
  c->add_flag("--json", a->json, "Print {\"rows\": [...]}");
  c->add_flag("--csv", a->csv, "Print CSV");
  c->add_flag("--md", a->md, "Print a markdown table (the default)");
  c->add_option("--num-heads", a->num_heads, "Attention heads (checkpoints without a default, custom widths)");
  c->add_option("--hidden-size", a->hidden_size, "Custom width for --model (e.g. tiny test models)");
  c->add_option("--depth", a->depth, "Custom depth for --model");
  c->add_option("--patch-size", a->patch_size, "Custom patch size for --model");
  c->add_option("--layout", a->layout, "SparseDiT layout P:SxG,N,R,D:T for --model (default: the family's by depth)");
  c->add_option("--frames", a->frames, "Video frames for --model (Latte: 16 by default)");
  c->add_option("--temporal-pool", a->temporal_pool, "Video SparseDiT: pool the frames K:1 too (appends /tK to densities)");
  c->add_option("-s,--seed", a->seed, "Seed for weights and inputs")->capture_default_str();
  c->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  a->dist.add(c);
  c->add_flag("--e2e", a->e2e,
              "Text-to-image end to end with random weights: T5 encode, the sampling steps (dense and each --density), "
              "VAE decode, seconds and peak memory per stage");
  c->add_option("--t5-dtype", a->t5_dtype, "--e2e: T5 weights bf16 | fp32")->capture_default_str();
  c->add_option("--t5-layers", a->t5_layers, "--e2e: fewer T5 layers (tests)");
  c->add_option("--text-encoder", a->text_encoder, "--e2e: T5 preset (the caption width follows it)")
      ->capture_default_str();
  c->callback([a] { run(*a); });
}

}  // namespace sdit::cli

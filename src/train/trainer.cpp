#include "train/trainer.h"

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "diffusion/pipeline.h"
#include "dist/shard.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/image.h"
#include "train/results_files.h"
#include "data/latent_dataset.h"
#include "data/mnist.h"
#include "models/convert.h"
#include "models/load.h"
#include "models/vae.h"
#include "util/compat.h"
#include "util/device.h"
#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kFormat = "sparsedit-train/1";
constexpr const char* kModelPrefix = "train.model.";
constexpr const char* kOptPrefix = "train.opt.";
constexpr int64_t kGridImages = 16, kGridRow = 8;

// The default generators of the CPU and of the training device; their states are what a
// checkpoint needs to continue the random stream exactly.
torch::Tensor generator_state(torch::Device d) {
  at::Generator g = at::globalContext().defaultGenerator(d);
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void set_generator_state(torch::Device d, const torch::Tensor& state) {
  at::Generator g = at::globalContext().defaultGenerator(d);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state.to(torch::kCPU).contiguous());
}

struct RngSnapshot {
  torch::Tensor cpu, device;
};

RngSnapshot snapshot_rng(torch::Device dev) {
  RngSnapshot s;
  s.cpu = generator_state(torch::kCPU);
  if (dev.is_cuda()) s.device = generator_state(dev);
  return s;
}

void restore_rng(const RngSnapshot& s, torch::Device dev) {
  set_generator_state(torch::kCPU, s.cpu);
  if (dev.is_cuda() && s.device.defined()) set_generator_state(dev, s.device);
}

// The per-sample shape of a batch tensor.
std::vector<int64_t> sample_shape(const std::vector<int64_t>& batch_shape) {
  return std::vector<int64_t>(batch_shape.begin() + 1, batch_shape.end());
}

void check_fits_data(const Model& m, const torch::Tensor& data, int64_t classes, const std::string& what,
                     const Conditioning& cond = {}) {
  const LatentSpec& l = m.latent();
  if (l.cond == CondKind::Text) {
    if (!cond.context.defined())
      fail(what, " is conditioned on captions; the data has none (encode a captioned dataset)");
    if (cond.context.size(2) != l.context_dim)
      fail(what, " takes captions of ", l.context_dim, " channels; the data's have ", cond.context.size(2));
  }
  const auto want = sample_shape(l.shape(1)), have = sample_shape(data.sizes().vec());
  if (want != have || (l.cond == CondKind::ClassLabel && l.num_classes != classes))
    fail(what, " is for inputs of shape ", shape_str(want), " and ", l.num_classes, " classes, but the data has ",
         shape_str(have), " and ", classes, " classes");
}

std::string fmt_step(int64_t step) {
  char b[16];
  std::snprintf(b, sizeof b, "%07lld", static_cast<long long>(step));
  return b;
}

}  // namespace

void Trainer::message(const std::string& m) const {
  if (hooks_.on_message) hooks_.on_message(m);
}

void Trainer::load_data() {
  if (opt_.data == "mnist") {
    auto m = load_mnist(opt_.cache_dir.empty() ? default_cache_dir() : opt_.cache_dir);
    data_ = m.train_images;
    data_cond_.labels = m.train_labels;
    num_classes_ = 10;
    return;
  }
  if (!is_directory(opt_.data))
    fail("--data '", opt_.data, "' is neither 'mnist' nor a latent dataset folder (written by sparsedit encode)");
  auto ds = LatentDataset::open(opt_.data);
  data_ = ds.latents;
  data_cond_.labels = ds.labels;
  data_cond_.context = ds.captions;  // text-conditioned models; undefined otherwise
  data_cond_.context_mask = ds.caption_mask;
  num_classes_ = ds.num_classes;
}

// --init-from: a dense model (converted when --sparse) or a SparseDiT, of any family.
Model Trainer::model_from_init() {
  StateDict sd = native_state_dict(load_checkpoint(opt_.init_from));
  LoadOptions lo;
  if (opt_.num_heads > 0) lo.num_heads = opt_.num_heads;
  ModelSpec spec = [&] {
    try {
      return detect_spec(sd, lo);
    } catch (const Error& e) {
      fail("--init-from ", opt_.init_from, ": ", e.what());
    }
  }();
  const int64_t depth = spec.config.value("depth", int64_t{0});
  if (!spec.sparse() && opt_.sparse) {
    const auto layout = opt_.layout.empty() ? default_layout(spec) : SparseLayout::parse(opt_.layout, depth);
    auto r = convert_dense_to_sparse(sd, spec.config.value("hidden_size", int64_t{0}), depth, layout);
    message("converted the dense " + display_name(spec) + " to layout " + layout.str() + " (" +
            std::to_string(r.missing.size()) + " new tensors W1 = 0, W2 = I; " + std::to_string(r.unexpected.size()) +
            " dense tensors split)");
    sd = std::move(r.sparse);
    spec.layout = layout;
  } else if (spec.sparse()) {
    if (!opt_.layout.empty() && SparseLayout::parse(opt_.layout, depth).str() != spec.layout->str())
      fail("--layout ", opt_.layout, " differs from the layout of the SparseDiT in ", opt_.init_from, " (",
           spec.layout->str(), ")");
    opt_.sparse = true;
  }
  Model m = Model::build(spec);
  load_state_dict(m.module(), sd, /*strict=*/true);
  return m;
}

// A model from a preset and/or custom sizes, shaped to the data, with its training init.
Model Trainer::model_from_scratch() {
  if (opt_.model.empty() && (opt_.hidden_size == 0 || opt_.depth == 0))
    fail("choose a model: --model NAME (DiT-S/2, DiT-B/4, ...) or --hidden-size and --depth "
         "(with --num-heads and --patch-size)");
  // Custom sizes start from DiT-XL/2's config (hidden, depth, heads, patch each overridable).
  ModelSpec spec = preset_spec(opt_.model.empty() ? "DiT-XL/2" : opt_.model);
  SpecOverrides o;
  if (opt_.hidden_size) o.hidden_size = opt_.hidden_size;
  if (opt_.depth) o.depth = opt_.depth;
  if (opt_.patch_size) o.patch_size = opt_.patch_size;
  if (opt_.num_heads) o.num_heads = opt_.num_heads;
  // Video latents are stored frames first, (N, F, C, H, W) (data/latent_dataset.h).
  const bool video = data_.dim() == 5;
  o.in_channels = data_.size(video ? 2 : 1);
  if (video) o.frames = data_.size(1);
  o.height = data_.size(-2);
  o.width = data_.size(-1);
  o.num_classes = num_classes_;
  if (data_cond_.context.defined()) o.context_len = data_cond_.context.size(1), o.context_dim = data_cond_.context.size(2);
  spec = family(spec.family).apply_overrides(spec, o);
  if (opt_.sparse) {
    const int64_t depth = spec.config.value("depth", int64_t{0});
    spec.layout = opt_.layout.empty() ? default_layout(spec) : SparseLayout::parse(opt_.layout, depth);
  }
  Model m = Model::build(spec);
  m.init_weights();
  return m;
}

void Trainer::build_fresh() {
  torch::manual_seed(opt_.seed);
  model_ = opt_.init_from.empty() ? model_from_scratch() : model_from_init();
  if (!opt_.init_from.empty())
    check_fits_data(model_, data_, num_classes_, "--init-from " + opt_.init_from, data_cond_);
  if (!model_.sparse() && (!opt_.layout.empty() || (!opt_.density.empty() && opt_.density != "full")))
    fail("--layout and --density apply to a SparseDiT; add --sparse");
  ema_ = Model::build(model_.spec());
  load_state_dict(ema_.module(), module_state_dict(model_.module()), /*strict=*/true);
}

void Trainer::setup() {
  device_ = dist::device_for_rank(parse_device(opt_.device), world_.launch());
  model_.to(device_);
  ema_.to(device_);
  model_.train(true);
  ema_.train(false);
  label_dropout_ = take_label_dropout(model_);
  DiffusionOptions dopt;
  dopt.learn_sigma = model_.latent().learn_sigma;
  dopt.channel_axis = model_.latent().channel_axis;
  diffusion_ = std::make_unique<GaussianDiffusion>(dopt);
  const LatentSpec& latent = model_.latent();
  const int64_t T = diffusion_->num_timesteps();
  // PixArt-MS trains with the micro-conditions of its images (here: the dataset's crop size).
  const auto& fam = family(model_.spec().family);
  if (latent.size_conditions && fam.size_conditions) {
    const int64_t n = data_.size(0), ds = latent.vae_downscale;
    const Conditioning s = fam.size_conditions(model_.spec(), {data_.size(-2) * ds, data_.size(-1) * ds});
    data_cond_.img_hw = s.img_hw.expand({n, -1}).contiguous();
    data_cond_.aspect_ratio = s.aspect_ratio.expand({n, -1}).contiguous();
  }
  if (model_.sparse()) {
    density_ = opt_.density.empty() ? kDefaultDensity : opt_.density;
    schedule_ = DensitySchedule::parse(density_, model_.grid(), T);
    intervals_ = plan_density_intervals(schedule_, opt_.density_intervals, opt_.global_batch_size);
  } else {
    density_ = "full";
    intervals_ = dense_interval(T, opt_.global_batch_size);
    if (!opt_.density_intervals.empty())
      message("--density-intervals is ignored: a dense model trains on one batch with t uniform over [0, T)");
  }
  // pos_embed is fixed (requires_grad false): the optimiser skips it, the EMA does not.
  std::vector<std::pair<std::string, torch::Tensor>> trainable;
  for (auto& p : model_.module().named_parameters())
    if (p.value().requires_grad()) trainable.emplace_back(p.key(), p.value());
  AdamWOptions a;
  a.lr = opt_.lr;
  a.weight_decay = opt_.weight_decay;
  adamw_ = std::make_unique<AdamW>(std::move(trainable), a);
  sampler_ = std::make_unique<EpochSampler>(data_.size(0), opt_.global_batch_size, opt_.seed);
  segments_ = shard_intervals(intervals_, world_.rank(), world_.size());
  if (opt_.sample_every > 0 && latent.latent_space() && opt_.vae.empty())
    fail("--sample-every on ", latent.channels, "-channel latents needs --vae DIR to decode the grid");
}

// Runs fn on rank 0 only (the results folder is rank 0's); its failure stops every rank together.
// One process: fn runs as is and its error propagates unchanged.
void Trainer::on_root(const std::function<void()>& fn) {
  if (!world_.is_distributed()) return fn();
  std::string reason;
  if (world_.is_root()) {
    try {
      fn();
    } catch (const std::exception& e) {
      reason = e.what();
      if (reason.empty()) reason = "rank 0 failed";
    }
  }
  const auto verdict = world_.agree_stop(reason);
  if (verdict.stop) fail(verdict.reason);
}

// Rank 0's parameters, buffers and EMA everywhere (and a check that all ranks run the same options).
void Trainer::sync_replicas() {
  if (!world_.is_distributed()) return;
  world_.expect_same(std::hash<std::string>{}(opt_.to_json()), "the training options");
  std::vector<torch::Tensor> ts;
  for (Model* m : {&model_, &ema_}) {
    for (const auto& p : m->module().parameters()) ts.push_back(p);
    for (const auto& b : m->module().buffers()) ts.push_back(b);
  }
  world_.broadcast(ts);
}

// Rank 0 creates the folders, drops log lines past the step being (re)started and the temporary files
// of dead writers; the others wait for it.
void Trainer::prepare_results_dir(int64_t keep_log_until) {
  on_root([&] {
    std::error_code ec;
    fs::create_directories(fs::path(opt_.results_dir) / "checkpoints", ec);
    if (ec) fail("cannot create '", opt_.results_dir, "/checkpoints': ", ec.message());
    truncate_log((fs::path(opt_.results_dir) / "log.jsonl").string(), keep_log_until);
    remove_stale_temporaries(opt_.results_dir);
  });
}

Trainer Trainer::start(const TrainOptions& opt, TrainHooks hooks, const dist::World& world) {
  opt.validate();
  Trainer tr;
  tr.opt_ = opt;
  tr.hooks_ = std::move(hooks);
  tr.world_ = world;
  tr.on_root([&] {
    const std::string existing = newest_checkpoint((fs::path(opt.results_dir) / "checkpoints").string());
    if (!existing.empty())
      fail("--results-dir ", opt.results_dir, " already holds a run (", existing,
           "); continue it with --resume, or choose another --results-dir");
  });
  tr.load_data();
  tr.build_fresh();
  tr.setup();
  tr.sync_replicas();
  tr.prepare_results_dir(0);  // drops the lines of an earlier, failed start
  return tr;
}

Trainer Trainer::resume(const std::string& checkpoint, const TrainOptions& cli, const std::set<std::string>& given,
                        TrainHooks hooks, const dist::World& world) {
  const std::string path = resolve_checkpoint(checkpoint);
  StateDict sd = load_checkpoint(path);
  auto meta = [&](const char* key) {
    auto it = sd.metadata.find(key);
    return it == sd.metadata.end() ? std::string() : it->second;
  };
  if (meta("format") != kFormat || meta("args").empty() || meta("step").empty() || !sd.contains("train.rng.cpu"))
    fail("'", path, "' is not a checkpoint of sparsedit train (no optimizer and RNG state); start a new run from its "
         "weights with --init-from");
  Trainer tr;
  tr.hooks_ = std::move(hooks);
  tr.world_ = world;
  tr.opt_ = merge_resume_options(TrainOptions::from_json(meta("args")), cli, given, run_dir_of(path));
  tr.opt_.validate();
  int64_t step = 0;
  try {
    step = std::stoll(meta("step"));
  } catch (const std::exception&) {
    fail("'", path, "': metadata step '", meta("step"), "' is not a number");
  }
  if (tr.opt_.steps < step)
    fail("--steps ", tr.opt_.steps, " is below the step of the checkpoint being resumed (", step, ")");
  tr.load_data();
  tr.ema_ = Model::from_state_dict(sd);  // the plain names: EMA weights
  check_fits_data(tr.ema_, tr.data_, tr.num_classes_, "checkpoint " + path, tr.data_cond_);
  StateDict raw;
  const std::string mp = kModelPrefix;
  for (const auto& k : sd.keys())
    if (k.rfind(mp, 0) == 0) raw.set(k.substr(mp.size()), sd.at(k));
  tr.model_ = Model::build(tr.ema_.spec());
  try {
    load_state_dict(tr.model_.module(), raw, /*strict=*/true);
  } catch (const Error& e) {
    fail("'", path, "': the train.model.* weights do not fit the model: ", e.what());
  }
  tr.setup();
  tr.adamw_->load(sd, kOptPrefix);
  tr.step_ = step;
  tr.last_checkpoint_ = path;
  // Last: building the modules above drew from the generators.
  RngSnapshot rng;
  rng.cpu = sd.at("train.rng.cpu");
  if (const auto* d = sd.find("train.rng.cuda")) rng.device = *d;
  restore_rng(rng, tr.device_);
  tr.sync_replicas();
  tr.prepare_results_dir(step);
  return tr;
}

void Trainer::train_step() {
  const int64_t s = step_ + 1;
  if (hooks_.before_step) hooks_.before_step(s, model_);
  const auto batch = sampler_->batch(step_);  // the global batch, in interval order
  const auto mine = dist::shard_range(static_cast<int64_t>(batch.size()), world_.rank(), world_.size());
  const auto idx = torch::tensor(std::vector<int64_t>(batch.begin() + mine.begin, batch.begin() + mine.end), torch::kLong);
  adamw_->zero_grad();
  StepOptions so;
  so.device = device_;
  so.min_snr_gamma = opt_.min_snr_gamma;
  so.seed = opt_.seed;
  so.step = s;
  so.label_dropout = label_dropout_;
  so.segments = segments_;
  so.before_forward = [&](const MicroBatch& mb) {
    if (hooks_.on_micro_batch)
      hooks_.on_micro_batch({s, mb.interval, mb.iv->t_begin, mb.iv->t_end, mb.segment->count, mb.iv->grid,
                             mb.t.min().item<int64_t>(), mb.t.max().item<int64_t>()});
  };
  std::string bad;  // this rank's first non-finite micro-batch
  so.before_backward = [&](const MicroBatch& mb) {
    if (!bad.empty() || std::isfinite(mb.weighted_loss)) return;
    const auto& iv = *mb.iv;
    std::ostringstream os;
    os << "the loss is not finite (" << mb.weighted_loss << ") at step " << s << " (t in [" << iv.t_begin << ", "
       << iv.t_end << ")";
    if (!iv.grid.empty()) os << ", grid " << iv.grid.str();
    os << ")";
    bad = os.str();
  };
  const auto local = accumulate_gradients(model_, *diffusion_, intervals_, data_.index_select(0, idx),
                                          data_cond_.index_select(idx), so);
  // The global means; a non-finite one is seen by every rank, so all stop together.
  const auto L = world_.allreduce(std::vector<double>{local.loss, local.mse, local.vb});
  if (!std::isfinite(L[0])) stop_nonfinite(s, bad);
  std::vector<torch::Tensor> params;
  for (const auto& [name, p] : adamw_->params()) params.push_back(p);
  dist::sum_gradients(world_, params);
  if (opt_.grad_clip > 0) {
    const double norm = clip_grad_norm(adamw_->params(), opt_.grad_clip);
    if (!std::isfinite(norm))  // the same summed gradients everywhere: every rank stops here
      fail("the gradient norm is ", norm, " at step ", s, "; training stopped. Last good checkpoint: ",
           last_checkpoint_.empty() ? std::string("none yet") : last_checkpoint_);
  }
  adamw_->step();
  ema_update(ema_.module(), model_.module(), opt_.ema_decay);
  step_ = s;
  log_loss_ += L[0], log_mse_ += L[1], log_vb_ += L[2], ++log_steps_;
  if (hooks_.on_step) {
    StepStats st{s, L[0], L[1], L[2], 0.0, opt_.lr};
    hooks_.on_step(st);
  }
}

void Trainer::stop_nonfinite(int64_t step, const std::string& local_reason) {
  const auto v = world_.agree_stop(local_reason);
  std::ostringstream os;
  if (!v.stop) os << "the loss is not finite at step " << step;
  else os << (world_.is_distributed() ? v.message() : v.reason);
  os << "; training stopped. ";
  if (last_checkpoint_.empty()) os << "No checkpoint of this run had been written yet. ";
  else os << "The last good checkpoint is " << last_checkpoint_ << ". ";
  os << "Try a lower --lr or --grad-clip 1.";
  fail(os.str());
}

void Trainer::run() {
  double interval_secs = 0;
  int64_t last_saved = last_checkpoint_.empty() ? -1 : step_;
  while (step_ < opt_.steps) {
    const auto t0 = Clock::now();
    train_step();
    interval_secs += std::chrono::duration<double>(Clock::now() - t0).count();
    const bool last = step_ == opt_.steps;
    if ((opt_.log_every > 0 && step_ % opt_.log_every == 0) || (last && log_steps_ > 0)) {
      const double n = static_cast<double>(log_steps_);
      StepStats st{step_, log_loss_ / n, log_mse_ / n, log_vb_ / n, interval_secs > 0 ? n / interval_secs : 0.0,
                   opt_.lr};
      on_root([&] { log_line(st); });
      if (hooks_.on_log) hooks_.on_log(st);
      log_loss_ = log_mse_ = log_vb_ = 0;
      log_steps_ = 0;
      interval_secs = 0;
    }
    if ((opt_.ckpt_every > 0 && step_ % opt_.ckpt_every == 0) || last) {
      write_checkpoint();
      last_saved = step_;
    }
    if (opt_.sample_every > 0 && step_ % opt_.sample_every == 0) on_root([&] { write_sample_grid(); });
  }
  if (last_saved != step_) write_checkpoint();
  if (!opt_.export_path.empty()) on_root([&] { export_weights(opt_.export_path); });
}

// Rank 0 writes; a failed write stops every rank, each naming the last good checkpoint.
void Trainer::write_checkpoint() {
  const std::string path = checkpoint_file(opt_.results_dir, step_);
  on_root([&] { save_checkpoint(path); });
  last_checkpoint_ = path;
}

void Trainer::log_line(const StepStats& s) const {
  json j = {{"step", s.step}, {"loss", s.loss}, {"mse", s.mse}, {"vb", s.vb}, {"steps_per_sec", s.steps_per_sec},
            {"lr", s.lr}};
  const std::string path = (fs::path(opt_.results_dir) / "log.jsonl").string();
  std::ofstream f(path, std::ios::app);
  f << j.dump() << "\n";
  f.flush();
  if (!f) fail("cannot append to '", path, "'");
}

std::string Trainer::sampling_json() const {
  // Guidance on every eps channel: DiT's 3-channel quirk exists for its 4-channel release only.
  json j = {{"num_sampling_steps", opt_.sample_steps}, {"cfg_scale", opt_.sample_cfg}, {"cfg_channels", "all"},
            {"sampler", opt_.sample_sampler}};
  if (model_.sparse()) j["density"] = density_;
  return j.dump();
}

void Trainer::save_checkpoint(const std::string& path) {
  StateDict sd = ema_.state_dict();
  const StateDict raw = module_state_dict(model_.module());
  for (const auto& k : raw.keys()) sd.set(kModelPrefix + k, raw.at(k));
  adamw_->save(sd, kOptPrefix);
  const auto rng = snapshot_rng(device_);
  sd.set("train.rng.cpu", rng.cpu);
  if (rng.device.defined()) sd.set("train.rng.cuda", rng.device.to(torch::kCPU));
  sd.metadata["format"] = kFormat;
  sd.metadata["step"] = std::to_string(step_);
  sd.metadata["args"] = opt_.to_json();
  sd.metadata["sampling"] = sampling_json();
  sd.metadata["world_size"] = std::to_string(world_.size());
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  ::sdit::save_checkpoint(path, sd);
  last_checkpoint_ = path;
  message("saved checkpoint " + path);
}

void Trainer::export_weights(const std::string& path) const {
  StateDict sd = ema_.state_dict();
  sd.metadata.erase("format");  // present when the EMA came from a resumed checkpoint
  sd.metadata.erase("step");
  sd.metadata["trained_steps"] = std::to_string(step_);
  sd.metadata["args"] = opt_.to_json();
  sd.metadata["sampling"] = sampling_json();
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  ::sdit::save_checkpoint(path, sd);
  message("exported the EMA weights to " + path);
}

void Trainer::write_sample_grid() {
  const LatentSpec& latent = ema_.latent();
  const auto saved = snapshot_rng(device_);
  SamplingRequest req;
  if (latent.cond == CondKind::Text)  // the first captions of the data
    req.cond = data_cond_.narrow(0, std::min<int64_t>(kGridImages, data_cond_.batch()));
  else
    req.cond.labels = torch::arange(kGridImages, torch::kLong).remainder(std::max<int64_t>(latent.num_classes, 1));
  req.steps = opt_.sample_steps;
  req.sampler = opt_.sample_sampler;
  req.cfg_scale = opt_.sample_cfg;
  req.guided_channels = -1;
  req.density = density_;
  req.seed = static_cast<int64_t>(opt_.seed);
  req.device = device_;
  Model& ema = ema_;
  torch::Tensor images = run_sampling(ema, req).samples;
  if (images.dim() == 5)  // a video model: the grid shows every sample's first frame
    images = latent.frames_as_images(images).index_select(0, torch::arange(0, kGridImages * latent.frames, latent.frames));
  if (latent.latent_space()) {
    auto vae = load_vae(opt_.vae);
    torch::NoGradGuard ng;
    images = vae->decode_latents(images);
  }
  const std::string path = (fs::path(opt_.results_dir) / "samples" / (fmt_step(step_) + ".png")).string();
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  save_image_grid(images, kGridRow, path,
                  {{"parameters", "step " + std::to_string(step_) + ", EMA, " + opt_.sample_steps + " " +
                                      opt_.sample_sampler + " steps, cfg " + std::to_string(opt_.sample_cfg) +
                                      ", density " + density_ + ", seed " + std::to_string(opt_.seed)}});
  restore_rng(saved, device_);
  message("wrote sample grid " + path);
}

std::string Trainer::describe() const {
  std::ostringstream os;
  auto shape = sample_shape(data_.sizes().vec());
  os << "data:      " << (opt_.data == "mnist" ? "MNIST" : opt_.data) << ", " << data_.size(0) << " samples of "
     << shape_str(shape) << ", " << num_classes_ << " classes\n";
  os << "model:     " << model_.describe() << ", " << model_.parameter_count() << " parameters\n";
  if (model_.sparse()) os << "density:   " << schedule_.describe() << "\n";
  os << "batches:   " << describe_intervals(intervals_) << "\n";
  os << "optimizer: AdamW lr " << opt_.lr << ", weight decay " << opt_.weight_decay << ", EMA " << opt_.ema_decay;
  if (opt_.min_snr_gamma > 0) os << ", Min-SNR-" << opt_.min_snr_gamma;
  if (opt_.grad_clip > 0) os << ", grad clip " << opt_.grad_clip;
  os << "\n";
  if (world_.is_distributed()) {
    os << "ranks:     " << world_.describe() << "; this rank runs";
    for (const auto& seg : segments_) os << " " << seg.count << " of interval " << seg.interval;
    os << "\n";
  }
  os << "steps:     " << step_ << " -> " << opt_.steps << " on " << opt_.device << ", results in " << opt_.results_dir;
  return os.str();
}

}  // namespace sdit

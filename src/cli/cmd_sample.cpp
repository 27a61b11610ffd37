// sparsedit sample: DiT's sample.py (same seed, same latents), plus the SparseDiT density schedule.

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/dist_flags.h"
#include "cli/sample_dist.h"
#include "cli/sample_text.h"
#include "diffusion/pipeline.h"
#include "data/npz.h"
#include "cli/video_output.h"
#include "io/file_util.h"
#include "io/image.h"
#include "io/video.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "models/vae.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/keyed_rng.h"
#include "util/memory.h"
#include "util/strings.h"

namespace sdit::cli {

namespace {

struct SampleArgs {
  std::string ckpt, labels = "207,360,387,974,88,979,417,279", steps = "250", sampler = "ddpm", cfg_channels = "3";
  std::string vae = "none", save_latents, save_npz, output = "sample.png", device = "cpu", density, frames_dir;
  int64_t num_heads = 0, image_size = 0, latent_size = 0, num_classes = 0, batch_size = 0, nrow = 4;
  int64_t seed = 0, num_samples = 0, vae_batch = 8, temporal_pool = 0;
  double eta = 0.0, cfg_scale = 4.0, fps = 8.0, lewei_scale = 0.0;
  int threads = 0;
  bool quiet = false;
  TextFlags text;                            // caption-conditioned models (sample_text.h)
  std::string seed_mode = "auto";            // sample_dist.h
  DistFlags dist;
  std::map<std::string, CLI::Option*> opts;  // to tell flags the user gave from defaults
  bool given(const std::string& name) const { return opts.at(name)->count() > 0; }
};

void check_sizes(const SampleArgs& a, const LatentSpec& l) {
  if (a.latent_size > 0 && a.latent_size != l.height)
    fail("--latent-size ", a.latent_size, " does not match the checkpoint's input size ", l.height);
  if (a.image_size > 0 && (a.image_size % l.vae_downscale != 0 || a.image_size / l.vae_downscale != l.height))
    fail("--image-size ", a.image_size, " does not match the checkpoint: it samples ", l.height, "x", l.width,
         l.latent_space() ? " latents (image size " + std::to_string(l.height * l.vae_downscale) + ")" : " images");
  if (a.num_classes > 0 && a.num_classes != l.num_classes)
    fail("--num-classes ", a.num_classes, " does not match the checkpoint's ", l.num_classes, " classes");
}

// The conditioning of the samples from the flags: caption features (and their unconditional branch,
// size and micro-conditions) for a text model; class labels for a class-conditional model
// (--class-labels a,b,c, or random: drawn with randint after z, --num-samples of them); a count for
// an unconditional one. The family's defaults stand in for flags the user did not give.
void conditioning_from_flags(const SampleArgs& a, const Model& model, const std::optional<CaptionFeatures>& enc,
                             SamplingRequest& req, Log& log) {
  const LatentSpec& l = model.latent();
  if (l.cond == CondKind::Text) {
    TextConditioning tc = text_conditioning(a.text, model, enc, req.sampler, log);
    req.cond = tc.cond;
    req.uncond = tc.uncond;
    req.height = tc.latent_height;
    req.width = tc.latent_width;
    if (!tc.description.empty()) log.info("conditioning: " + tc.description);
    return;
  }
  for (auto name : {"prompt", "negative", "caption_embeddings", "null_caption", "cfg_drop_mask"})
    if (a.text.given(name)) fail("--", a.text.opts.at(name)->get_name().substr(2), " applies to text-to-image models; this ",
                                 model.name(), " is not one");
  if (a.text.given("width") || a.text.given("height"))
    std::tie(req.height, req.width) = requested_latent_size(a.text, model, log);
  if (a.num_samples < 0) fail("--num-samples must be positive, got ", a.num_samples);
  if (l.cond != CondKind::ClassLabel) {
    if (a.given("labels")) fail("--class-labels: this ", model.name(), " is unconditional; use --num-samples N");
    req.num_samples = a.num_samples > 0 ? a.num_samples : 1;
    return;
  }
  const std::string family_labels = sampling_defaults(model.spec()).class_labels;
  const std::string labels = a.given("labels") || family_labels.empty() ? a.labels : family_labels;
  if (labels == "random") {
    req.num_samples = a.num_samples > 0 ? a.num_samples : 1;
    req.after_noise = random_labels_after_noise(l.num_classes);
    return;
  }
  if (a.num_samples > 0 && !a.given("labels")) {
    // N images with one random label each, drawn from the image's own key: the same set at any
    // number of ranks or batch size.
    req.cond.labels = KeyedDraws(static_cast<uint64_t>(a.seed), 0)
                          .randint(RngStream::ClassLabel, sample_range(0, a.num_samples), 0, l.num_classes);
    return;
  }
  req.cond.labels = torch::tensor(parse_int_list(labels, "class label"), torch::kLong);
  if (a.num_samples > 0 && a.num_samples != req.cond.labels.size(0))
    fail("--num-samples ", a.num_samples, " differs from the ", req.cond.labels.size(0), " labels of --class-labels");
}

// PixArt's inference.py: 20 DPM-Solver steps, 100 IDDPM steps; DiT's sample.py: 250.
std::string default_steps(const std::string& sampler, const SamplingDefaults& d) {
  if (sampler == d.sampler) return d.steps;
  return sampler == "dpm-solver" ? "20" : sampler == "iddpm" ? "100" : "250";
}

std::string labels_text(const SamplingResult& res) {
  if (!res.cond.labels.defined()) return "";
  const auto l = res.cond.labels.to(torch::kCPU).contiguous();
  return join(std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel()));
}

SamplingRequest make_request(const SampleArgs& a, const Model& model, const std::optional<CaptionFeatures>& enc,
                             const torch::Device& device, Log& log) {
  if (a.cfg_channels != "3" && a.cfg_channels != "all") fail("--cfg-channels must be 3 or all, got '", a.cfg_channels, "'");
  SamplingRequest req;
  // The family's reference settings where neither the flags nor the checkpoint say otherwise.
  const SamplingDefaults d = sampling_defaults(model.spec());
  req.sampler = a.given("sampler") ? a.sampler : d.sampler;
  req.steps = a.given("steps") ? a.steps : default_steps(req.sampler, d);
  req.eta = a.eta;
  req.cfg_scale = a.given("cfg_scale") ? a.cfg_scale : d.cfg_scale;
  req.guided_channels = a.given("cfg_channels") ? (a.cfg_channels == "all" ? -1 : 3) : d.guided_channels;
  req.density = with_temporal_pool(a.density.empty() && a.temporal_pool > 0 ? kDefaultDensity : a.density,
                                   a.temporal_pool);
  if (model.latent().cond == CondKind::None && a.given("cfg_scale") && a.cfg_scale != 1.0)
    log.info("note: " + model.describe() + " is unconditional: it samples without guidance, --cfg-scale is ignored");
  // A checkpoint may recommend sampling settings; explicit flags win.
  std::set<std::string> given;
  for (auto name : {"steps", "sampler", "density", "cfg_channels", "cfg_scale", "eta"})
    if (a.given(name)) given.insert(name);
  if (a.temporal_pool > 0) given.insert("density");
  for (const auto& w : apply_recommended(model, req, given)) log.info("warning: " + w);
  // PixArt's DPM-Solver guides every eps channel; forward_with_cfg (ddpm, iddpm, ...) the first 3.
  if (!a.given("cfg_channels") && !recommended_sampling(model).count("cfg_channels") && req.sampler == "dpm-solver")
    req.guided_channels = -1;
  conditioning_from_flags(a, model, enc, req, log);
  req.seed = a.seed;
  req.batch_size = a.batch_size;
  req.device = device;
  return req;
}

std::string parameters_text(const SampleArgs& a, const Model& model, const SamplingRequest& req,
                            const SamplingResult& res) {
  std::ostringstream params;
  params << "model: " << model.describe() << "; ckpt: " << a.ckpt << "; seed: " << a.seed << "; steps: " << req.steps
         << "; sampler: " << req.sampler << "; cfg_scale: " << req.cfg_scale << " ("
         << (req.guided_channels < 0 ? "all" : "3") << " channels); density: " << res.density_description;
  const std::string labels = labels_text(res);
  if (!labels.empty()) params << "; class_labels: " << labels;
  return params.str();
}

// The latents in the model's layout ((n, F, C, H, W) for Latte), with the labels actually used.
void save_latents(const SampleArgs& a, const SamplingResult& res, Log& log) {
  StateDict out;
  out.set("latents", res.samples.contiguous());
  out.metadata["seed"] = std::to_string(a.seed);
  const std::string labels = labels_text(res);
  if (!labels.empty()) out.metadata["class_labels"] = labels;
  write_safetensors(a.save_latents, out);
  log.stage("saved latents to " + a.save_latents);
}

// A video model's outputs: decoded frame by frame, then -o (by extension) and --frames-dir.
void write_video_samples(const SampleArgs& a, const Model& model, const std::string& params, const SamplingResult& res,
                 const torch::Device& device, Log& log) {
  if (!a.save_npz.empty()) fail("--save-npz writes images; for a video model use -o VIDEO or --frames-dir");
  const bool decode = a.given("output") || !a.frames_dir.empty();
  if (!decode) return;
  if (model.latent().latent_space() && a.vae == "none")
    fail("-o/--frames-dir need --vae DIR to decode this model's latents frame by frame (or use --save-latents)");
  AutoencoderKL vae{nullptr};
  if (model.latent().latent_space()) {
    vae = load_vae(a.vae);
    vae->to(device);
  }
  const auto videos = decode_video_samples(res.samples, model.latent(), vae ? &vae : nullptr, a.vae_batch, device);
  if (vae) log.stage("decoded " + std::to_string(videos.size(0) * videos.size(1)) + " frames with the VAE in " + a.vae);
  VideoOutputOptions v;
  v.output = a.given("output") ? a.output : "";
  v.frames_dir = a.frames_dir;
  v.fps = a.fps;
  v.nrow = a.nrow;
  v.png_text = {{"parameters", params}};
  const std::string note = video_output_note(v.output);
  if (!note.empty()) log.info(note);
  write_video_outputs(videos, v, log);
  if (!v.output.empty()) log.stage("wrote " + v.output);
}

// The images of an image model, --vae-batch latents at a time (a 50K-sample run never decodes or
// holds them all at once): each batch goes to the --save-npz stream, and is kept for the -o grid
// unless --save-npz was asked without -o (a grid of every image of a large run helps no one).
void write_image_samples(const SampleArgs& a, const Model& model, const std::string& params, const SamplingResult& res,
                         const torch::Device& device, Log& log) {
  // A whole diffusers pipeline folder brings its VAE (vae/) unless --vae says otherwise.
  const bool pipeline_vae = !a.given("vae") && is_pipeline_folder(a.ckpt) && is_directory(a.ckpt + "/vae");
  const std::string vae_dir = pipeline_vae ? a.ckpt + "/vae" : a.vae;
  const bool decode = vae_dir != "none";
  if (!decode && model.latent().latent_space()) {
    if (!a.save_npz.empty()) fail("--save-npz needs decoded images: pass --vae DIR for a latent model");
    if (a.given("output")) fail("--output needs --vae DIR to decode this model's latents (or use --save-latents)");
    return;
  }
  std::optional<AutoencoderKL> vae;
  if (decode) {
    vae = load_vae(vae_dir);
    (*vae)->to(device);
  }
  const bool grid = a.given("output") || a.save_npz.empty();
  std::optional<NpzImageWriter> npz;
  if (!a.save_npz.empty()) npz.emplace(a.save_npz, res.samples.size(0));
  std::vector<torch::Tensor> kept;
  const int64_t n = res.samples.size(0), step = decode ? a.vae_batch : n;
  ProgressBar bar("decoding", n, a.quiet || !decode || n <= step);
  for (int64_t i = 0; i < n; i += step) {
    const auto latents = res.samples.narrow(0, i, std::min(step, n - i));
    const auto images = decode ? (*vae)->decode_latents(latents.to(device)).to(torch::kCPU) : latents;
    if (npz) npz->add(images);
    if (grid) kept.push_back(images);
    bar.update(i + latents.size(0));
  }
  bar.finish();
  if (decode) log.stage("decoded " + std::to_string(n) + " images with the VAE in " + vae_dir + peak_memory(device));
  if (npz) {
    npz->finish(res.cond.labels.defined() ? res.cond.labels.cpu() : torch::Tensor());
    log.stage("wrote " + a.save_npz + " (arr_0 uint8 NHWC, arr_1 labels)");
  }
  if (grid) {
    save_image_grid(torch::cat(kept), a.nrow, a.output, {{"parameters", params}});
    log.stage("wrote " + a.output);
  }
}

// --save-latents, the decoded images or videos (--vae, or the samples of a pixel-space model), --save-npz, -o.
void write_outputs(const SampleArgs& a, const Model& model, const SamplingRequest& req, const SamplingResult& res,
                   const torch::Device& device, Log& log) {
  if (!a.save_latents.empty()) save_latents(a, res, log);
  const std::string params = parameters_text(a, model, req, res);
  if (res.samples.dim() == 5) return write_video_samples(a, model, params, res, device, log);
  if (!a.frames_dir.empty()) fail("--frames-dir writes the frames of a video model; this ", model.name(), " makes images");
  if (video_format_of_path(a.output)) fail("-o ", a.output, ": a video needs a video model; ", model.name(), " makes images");
  write_image_samples(a, model, params, res, device, log);
}

// Sides used, time-averaged tokens and MACs per forward of one sample, wall time.
void print_summary(const Model& model, const SamplingRequest& req, const SamplingResult& res, const torch::Device& device) {
  double tokens = 0, calls = 0;
  std::ostringstream sides;
  for (auto& [grid, cnt] : res.grid_calls) {
    tokens += static_cast<double>(grid.tokens()) * cnt;
    calls += cnt;
    sides << (sides.tellp() > 0 ? ", " : "") << grid.str() << " (" << cnt << " calls)";
  }
  const double wall = res.seconds, n = static_cast<double>(req.samples());
  std::printf("model:      %s\n", model.describe().c_str());
  if (model.latent().cond == CondKind::None)
    std::printf("sampler:    %s, %lld steps (%s), unconditional (no guidance)\n", req.sampler.c_str(),
                (long long)res.steps, req.steps.c_str());
  else
    std::printf("sampler:    %s, %lld steps (%s), cfg %.3g on %s channels\n", req.sampler.c_str(), (long long)res.steps,
                req.steps.c_str(), req.cfg_scale, req.guided_channels < 0 ? "all" : "3");
  const std::string labels = labels_text(res);
  if (!labels.empty()) std::printf("labels:     %s\n", labels.c_str());
  std::printf("density:    %s\n", res.density_description.c_str());
  std::printf("grid sides: %s\n", sides.str().c_str());
  std::printf("tokens:     %.1f mean per forward (dense %lld)\n", calls > 0 ? tokens / calls : 0.0,
              (long long)model.grid().tokens());
  const bool cfg = req.cfg_scale != 1.0 && model.latent().cond != CondKind::None;
  std::printf("GMACs:      %.3f mean per forward of one sample%s\n", res.mean_gmacs, cfg ? " (x2 with CFG)" : "");
  std::printf("wall time:  %.2f s, %.3f %s/s, %.3f s/step\n", wall, n / wall, res.samples.dim() == 5 ? "videos" : "img",
              wall / static_cast<double>(res.steps * res.runs));
  const auto peak = compat::cuda_peak_bytes(device);
  if (peak >= 0) std::printf("peak GPU memory: %.1f MiB\n", peak / 1048576.0);
}

// The first file the run writes: a per-image run keeps its finished batches beside it.
std::string first_output(const SampleArgs& a) {
  return !a.save_npz.empty() ? a.save_npz : !a.save_latents.empty() ? a.save_latents : a.output;
}

void run_sample(SampleArgs& a) {
  a.dist.relaunch_if_asked();
  // Checked before sampling: a long run must not fail only when it comes to decode.
  if (a.vae_batch < 1) fail("--vae-batch must be positive, got ", a.vae_batch);
  set_threads(a.threads);
  auto device = parse_device(a.device);
  const dist::World world = a.dist.connect(device);
  const bool quiet = a.quiet || !world.is_root();  // rank 0 speaks and writes
  Log log(quiet);
  LoadOptions lo;
  if (a.num_heads > 0) lo.num_heads = a.num_heads;
  if (a.lewei_scale > 0) lo.config["lewei_scale"] = a.lewei_scale;
  // Prompts first: the text encoder is freed before the transformer is loaded.
  const std::optional<CaptionFeatures> enc = encode_prompts(a.text, a.ckpt, lo, device, log);
  reset_process_peak_rss();  // the stage lines below report the transformer's and the VAE's peaks
  Model model = Model::load(a.ckpt, lo);
  model.to(device);
  log.stage("loaded " + model.describe() + " from " + a.ckpt + peak_memory(device));
  check_sizes(a, model.latent());
  const std::string mode = resolve_seed_mode(a.seed_mode, world);
  SamplingRequest req = make_request(a, model, enc, device, log);
  compat::cuda_reset_peak(device);
  std::string resume_dir;
  const RankedSampling rs{a.seed_mode, a.ckpt, first_output(a), a.given("labels"), a.num_samples, quiet};
  const int64_t runs = req.batch_size > 0 ? (req.samples() + req.batch_size - 1) / req.batch_size : 1;
  auto res = mode == "reference" ? run_sampling(model, req, progress_bars(runs, quiet))
                                 : sample_across_ranks(rs, model, req, world, mode, log, resume_dir);
  if (res.cond.empty()) res.cond = req.cond;  // a sharded run reports the request's rows
  log.stage("sampled " + std::to_string(req.samples()) + (res.samples.dim() == 5 ? " videos, " : " images, ") +
            std::to_string(res.steps) + " steps, " + req.sampler +
            (world.is_distributed() ? " on " + std::to_string(world.size()) + " ranks (" + mode + " seeds)" : "") +
            peak_memory(device));
  if (world.is_root()) {
    write_outputs(a, model, req, res, device, log);
    if (!resume_dir.empty()) std::filesystem::remove_all(resume_dir);
    if (!quiet) print_summary(model, req, res, device);
  }
  world.barrier();  // the other ranks end when rank 0 has written
}

}  // namespace

void register_sample(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  auto* c = app.add_subcommand("sample", "Sample images or videos from a checkpoint (as DiT's / Latte's sample.py)");
  auto& o = a->opts;
  o["ckpt"] = c->add_option("-m,--ckpt", a->ckpt, "checkpoint (.pt, .safetensors, diffusers folder)")->required();
  o["num_heads"] = c->add_option("--num-heads", a->num_heads, "attention heads (default from the hidden size)");
  o["lewei_scale"] = c->add_option("--lewei-scale,--interpolation-scale", a->lewei_scale,
                                   "PixArt position-embedding scale a .pth does not store (default: 2 for a 1024-px "
                                   "model, else 1)");
  o["image_size"] = c->add_option("--image-size", a->image_size, "image size in pixels (checked against the model)");
  o["latent_size"] = c->add_option("--latent-size", a->latent_size, "latent size (checked against the model)");
  o["num_classes"] = c->add_option("--num-classes", a->num_classes, "number of classes (checked against the model)");
  o["labels"] = c->add_option("--class-labels", a->labels,
                               "comma-separated class labels, or random (drawn after the noise; see --num-samples); "
                               "default: the family's (DiT: these, Latte: random)")->capture_default_str();
  o["num_samples"] = c->add_option("--num-samples", a->num_samples,
                                   "samples of an unconditional model, or N images with random class labels (one keyed "
                                   "draw per image; Latte's `random`: drawn after the noise)");
  o["seed_mode"] = c->add_option("--seed-mode", a->seed_mode,
                                 "auto | reference (sample.py, one process) | per-image (same images at any rank "
                                 "count; resumable) | dit (sample_ddp.py's per-rank seeds)")
                       ->capture_default_str();
  o["seed"] = c->add_option("-s,--seed", a->seed, "random seed")->capture_default_str();
  o["steps"] = c->add_option("--num-sampling-steps,--steps", a->steps,
                             "respacing: 250, ddim50, 10,15,20; dpm-solver: a step count (default 250, PixArt 20)");
  o["sampler"] = c->add_option("--sampler,--sampling-method", a->sampler,
                               "ddpm | iddpm | ddim | dpm++2m | dpm-solver (default: the family's: ddpm for DiT, "
                               "dpm-solver for PixArt)");
  o["eta"] = c->add_option("--eta", a->eta, "DDIM eta")->capture_default_str();
  o["cfg_scale"] = c->add_option("--cfg-scale", a->cfg_scale,
                                  "guidance scale; 1 = no guidance (default: the family's, DiT 4, PixArt 4.5, Latte 7)");
  o["cfg_channels"] = c->add_option("--cfg-channels", a->cfg_channels,
                                     "3 (DiT's and PixArt's forward_with_cfg) | all (default for dpm-solver and Latte)");
  o["density"] = c->add_option("--density", a->density,
                               "SparseDiT token density: full | fixed:S | range:RMIN,RMAX | sides:a,b,c,d | per-step:RMIN,RMAX");
  o["vae"] = c->add_option("--vae", a->vae, "diffusers VAE folder to decode latents, or none")->capture_default_str();
  o["save_latents"] = c->add_option("--save-latents", a->save_latents, "write the conditional latents (tensor 'latents')");
  o["save_npz"] = c->add_option("--save-npz", a->save_npz, "write the images as an ADM-style .npz (arr_0 uint8 NHWC)");
  o["output"] = c->add_option("-o,--output", a->output,
                               "PNG grid; for a video model also .mp4 (H.264), .webp or .gif (animated)")->capture_default_str();
  o["frames_dir"] = c->add_option("--frames-dir", a->frames_dir, "video models: one PNG per sample and frame here");
  o["fps"] = c->add_option("--fps", a->fps, "frames per second of a video output")->capture_default_str();
  o["vae_batch"] = c->add_option("--vae-batch", a->vae_batch, "images or video frames per VAE decode")->capture_default_str();
  o["temporal_pool"] = c->add_option("--temporal-pool", a->temporal_pool,
                                     "SparseDiT video models: pool frames K:1 too (appends /tK to the density)");
  o["nrow"] = c->add_option("--nrow", a->nrow, "images per row of the grid")->capture_default_str();
  o["threads"] = c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  o["device"] = c->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  o["batch_size"] = c->add_option("--batch-size", a->batch_size,
                                  "labels per run; each chunk draws its own z then its per-step noise, in order");
  o["quiet"] = c->add_flag("-q,--quiet", a->quiet, "print nothing but errors");
  add_text_flags(c, a->text);
  a->dist.add(c);
  c->callback([a] { run_sample(*a); });
}

}  // namespace sdit::cli

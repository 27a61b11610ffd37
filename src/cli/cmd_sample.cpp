// sparsedit sample: DiT's sample.py (same seed, same latents), plus the SparseDiT density schedule.

#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "diffusion/pipeline.h"
#include "data/npz.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "models/vae.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/strings.h"

namespace sdit::cli {

namespace {

struct SampleArgs {
  std::string ckpt, labels = "207,360,387,974,88,979,417,279", steps = "250", sampler = "ddpm", cfg_channels = "3";
  std::string vae = "none", save_latents, save_npz, output = "sample.png", device = "cpu", density;
  int64_t num_heads = 0, image_size = 0, latent_size = 0, num_classes = 0, batch_size = 0, nrow = 4;
  int64_t seed = 0;
  double eta = 0.0, cfg_scale = 4.0;
  int threads = 0;
  bool quiet = false;
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

// The conditioning of the samples from the flags: class labels for a class-conditional model.
Conditioning conditioning_from_flags(const SampleArgs& a, const LatentSpec& l) {
  Conditioning c;
  if (l.cond == CondKind::ClassLabel) c.labels = torch::tensor(parse_int_list(a.labels, "class label"), torch::kLong);
  return c;
}

std::string labels_text(const SamplingRequest& req) {
  if (!req.cond.labels.defined()) return "";
  const auto l = req.cond.labels.to(torch::kCPU);
  return join(std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel()));
}

SamplingRequest make_request(const SampleArgs& a, const Model& model, const torch::Device& device, const Log& log) {
  if (a.cfg_channels != "3" && a.cfg_channels != "all") fail("--cfg-channels must be 3 or all, got '", a.cfg_channels, "'");
  SamplingRequest req;
  req.cond = conditioning_from_flags(a, model.latent());
  req.steps = a.steps;
  req.sampler = a.sampler;
  req.eta = a.eta;
  req.cfg_scale = a.cfg_scale;
  req.guided_channels = a.cfg_channels == "all" ? -1 : 3;
  req.density = a.density;
  // A checkpoint may recommend sampling settings; explicit flags win.
  std::set<std::string> given;
  for (auto name : {"steps", "sampler", "density", "cfg_channels", "cfg_scale", "eta"})
    if (a.given(name)) given.insert(name);
  for (const auto& w : apply_recommended(model, req, given)) log.info("warning: " + w);
  req.seed = a.seed;
  req.batch_size = a.batch_size;
  req.device = device;
  return req;
}

// run_sampling with a one-line progress bar per run; each bar starts its clock when the previous
// run ends, so s/it covers the first step too.
SamplingResult sample_with_progress(Model& model, const SamplingRequest& req, bool quiet) {
  const int64_t n = req.samples();
  const int64_t runs = req.batch_size > 0 ? (n + req.batch_size - 1) / req.batch_size : 1;
  auto make_bar = [&](int64_t run) {
    return std::make_unique<ProgressBar>("sampling " + std::to_string(run + 1) + "/" + std::to_string(runs), 0, quiet);
  };
  auto bar = make_bar(0);
  return run_sampling(model, req, [&](int64_t run, int64_t, int64_t step, int64_t total) {
    bar->set_total(total);
    bar->update(step);
    if (step == total) {
      bar->finish();
      bar = make_bar(run + 1);
    }
  });
}

// --save-latents, the decoded images (--vae, or the samples of a pixel-space model), --save-npz, -o.
void write_outputs(const SampleArgs& a, const Model& model, const SamplingRequest& req, const SamplingResult& res,
                   const torch::Device& device, Log& log) {
  const std::string labels = labels_text(req);
  if (!a.save_latents.empty()) {
    StateDict out;
    out.set("latents", res.samples.contiguous());
    out.metadata["seed"] = std::to_string(a.seed);
    if (!labels.empty()) out.metadata["class_labels"] = labels;
    write_safetensors(a.save_latents, out);
    log.stage("saved latents to " + a.save_latents);
  }
  torch::Tensor images;
  if (a.vae != "none") {
    auto vae = load_vae(a.vae);
    vae->to(device);
    images = vae->decode_latents(res.samples.to(device)).to(torch::kCPU);
    log.stage("decoded with the VAE in " + a.vae);
  } else if (!model.latent().latent_space()) {
    images = res.samples;  // pixel-space model: the samples are the images
  }
  if (!a.save_npz.empty()) {
    if (!images.defined()) fail("--save-npz needs decoded images: pass --vae DIR for a latent model");
    write_npz_images(a.save_npz, images, req.cond.labels.defined() ? req.cond.labels.cpu() : torch::Tensor());
    log.stage("wrote " + a.save_npz + " (arr_0 uint8 NHWC, arr_1 labels)");
  }
  if (images.defined()) {
    std::ostringstream params;
    params << "model: " << model.describe() << "; ckpt: " << a.ckpt << "; seed: " << a.seed << "; steps: " << req.steps
           << "; sampler: " << req.sampler << "; cfg_scale: " << req.cfg_scale << " ("
           << (req.guided_channels < 0 ? "all" : "3") << " channels); density: " << res.density_description;
    if (!labels.empty()) params << "; class_labels: " << labels;
    save_image_grid(images, a.nrow, a.output, {{"parameters", params.str()}});
    log.stage("wrote " + a.output);
  } else if (a.given("output")) {
    fail("--output needs --vae DIR to decode this model's latents (or use --save-latents)");
  }
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
  std::printf("sampler:    %s, %lld steps (%s), cfg %.3g on %s channels\n", req.sampler.c_str(), (long long)res.steps,
              req.steps.c_str(), req.cfg_scale, req.guided_channels < 0 ? "all" : "3");
  std::printf("density:    %s\n", res.density_description.c_str());
  std::printf("grid sides: %s\n", sides.str().c_str());
  std::printf("tokens:     %.1f mean per forward (dense %lld)\n", calls > 0 ? tokens / calls : 0.0,
              (long long)model.grid().tokens());
  std::printf("GMACs:      %.3f mean per forward of one sample%s\n", res.mean_gmacs,
              req.cfg_scale != 1.0 ? " (x2 with CFG)" : "");
  std::printf("wall time:  %.2f s, %.3f img/s, %.3f s/step\n", wall, n / wall,
              wall / static_cast<double>(res.steps * res.runs));
  const auto peak = compat::cuda_peak_bytes(device);
  if (peak >= 0) std::printf("peak GPU memory: %.1f MiB\n", peak / 1048576.0);
}

void run_sample(SampleArgs& a) {
  set_threads(a.threads);
  Log log(a.quiet);
  const auto device = parse_device(a.device);
  LoadOptions lo;
  if (a.num_heads > 0) lo.num_heads = a.num_heads;
  Model model = Model::load(a.ckpt, lo);
  model.to(device);
  log.stage("loaded " + model.describe() + " from " + a.ckpt);
  check_sizes(a, model.latent());
  const SamplingRequest req = make_request(a, model, device, log);
  compat::cuda_reset_peak(device);
  const auto res = sample_with_progress(model, req, a.quiet);
  log.stage("sampled " + std::to_string(req.samples()) + " images, " + std::to_string(res.steps) + " steps, " +
            req.sampler);
  write_outputs(a, model, req, res, device, log);
  if (!a.quiet) print_summary(model, req, res, device);
}

}  // namespace

void register_sample(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  auto* c = app.add_subcommand("sample", "Sample images from a DiT or SparseDiT checkpoint (as DiT's sample.py)");
  auto& o = a->opts;
  o["ckpt"] = c->add_option("-m,--ckpt", a->ckpt, "checkpoint (.pt, .safetensors, diffusers folder)")->required();
  o["num_heads"] = c->add_option("--num-heads", a->num_heads, "attention heads (default from the hidden size)");
  o["image_size"] = c->add_option("--image-size", a->image_size, "image size in pixels (checked against the model)");
  o["latent_size"] = c->add_option("--latent-size", a->latent_size, "latent size (checked against the model)");
  o["num_classes"] = c->add_option("--num-classes", a->num_classes, "number of classes (checked against the model)");
  o["labels"] = c->add_option("--class-labels", a->labels, "comma-separated class labels")->capture_default_str();
  o["seed"] = c->add_option("-s,--seed", a->seed, "random seed")->capture_default_str();
  o["steps"] = c->add_option("--num-sampling-steps,--steps", a->steps, "respacing: 250, ddim50, 10,15,20")->capture_default_str();
  o["sampler"] = c->add_option("--sampler,--sampling-method", a->sampler, "ddpm | ddim | dpm++2m")->capture_default_str();
  o["eta"] = c->add_option("--eta", a->eta, "DDIM eta")->capture_default_str();
  o["cfg_scale"] = c->add_option("--cfg-scale", a->cfg_scale, "guidance scale; 1 = no guidance")->capture_default_str();
  o["cfg_channels"] = c->add_option("--cfg-channels", a->cfg_channels, "3 (DiT release) | all")->capture_default_str();
  o["density"] = c->add_option("--density", a->density,
                               "SparseDiT token density: full | fixed:S | range:RMIN,RMAX | sides:a,b,c,d | per-step:RMIN,RMAX");
  o["vae"] = c->add_option("--vae", a->vae, "diffusers VAE folder to decode latents, or none")->capture_default_str();
  o["save_latents"] = c->add_option("--save-latents", a->save_latents, "write the conditional latents (tensor 'latents')");
  o["save_npz"] = c->add_option("--save-npz", a->save_npz, "write the images as an ADM-style .npz (arr_0 uint8 NHWC)");
  o["output"] = c->add_option("-o,--output", a->output, "PNG grid")->capture_default_str();
  o["nrow"] = c->add_option("--nrow", a->nrow, "images per row of the grid")->capture_default_str();
  o["threads"] = c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  o["device"] = c->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  o["batch_size"] = c->add_option("--batch-size", a->batch_size,
                                  "labels per run; each chunk draws its own z then its per-step noise, in order");
  o["quiet"] = c->add_flag("-q,--quiet", a->quiet, "print nothing but errors");
  c->callback([a] { run_sample(*a); });
}

}  // namespace sdit::cli

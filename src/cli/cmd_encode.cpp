// sparsedit encode: an ImageFolder tree -> a latent dataset for `sparsedit train --data`.
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "models/vae.h"
#include "train/encode_folder.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct EncodeArgs {
  EncodeFolderOptions opts;
  std::string vae, device = "cpu";
  int threads = 0;
  bool quiet = false;
};

void run_encode(EncodeArgs a) {
  set_threads(a.threads);
  Log log(a.quiet);
  const auto device = parse_device(a.device);
  auto vae = load_vae(a.vae);
  vae->to(device);
  log.stage("loaded VAE " + a.vae);
  std::unique_ptr<ProgressBar> progress;
  a.opts.progress = [&](int64_t done, int64_t total) {
    if (!progress) progress = std::make_unique<ProgressBar>("encoding", total, a.quiet);
    progress->update(done);
  };
  auto r = encode_image_folder(vae, a.opts);
  if (progress) progress->finish();
  log.stage("encoded " + std::to_string(r.images) + " images of " + std::to_string(r.classes.size()) +
            " classes into " + std::to_string(r.samples) + " samples in " + a.opts.out_dir);
  if (r.skipped_files > 0)
    log.info("ignored " + std::to_string(r.skipped_files) + " files without an image extension");
}

}  // namespace

void register_encode(CLI::App& app) {
  auto a = std::make_shared<EncodeArgs>();
  auto* c = app.add_subcommand("encode", "Encode an ImageFolder tree (ROOT/<class>/<image>) into a latent dataset");
  c->add_option("--vae", a->vae, "diffusers VAE folder (config.json + diffusion_pytorch_model.safetensors)")->required();
  c->add_option("--images", a->opts.images_dir, "image root; classes = sorted sub-folder names")->required();
  c->add_option("--image-size", a->opts.image_size, "ADM centre-crop size in pixels")->capture_default_str();
  c->add_option("-o,--output,--out", a->opts.out_dir, "dataset folder (meta.json + shard_NNNNN.safetensors)")->required();
  c->add_flag("--flip", a->opts.flip, "also store every image mirrored, as an extra sample");
  c->add_option("-s,--seed", a->opts.seed, "seed of the posterior sampling generator")->capture_default_str();
  c->add_option("--batch-size", a->opts.batch_size, "images per VAE forward")->capture_default_str();
  c->add_option("--shard-size", a->opts.shard_size, "samples per shard file")->capture_default_str();
  c->add_flag("--overwrite", a->opts.overwrite, "replace a dataset already in --out");
  c->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  c->add_flag("-q,--quiet", a->quiet, "print nothing but errors");
  c->callback([a] { run_encode(*a); });
}

}  // namespace sdit::cli

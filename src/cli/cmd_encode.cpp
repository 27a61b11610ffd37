// sparsedit encode: an ImageFolder tree, captioned images or a video folder -> a latent dataset for
// `sparsedit train --data`.
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "conditioning/t5_conditioner.h"
#include "models/vae.h"
#include "train/encode_folder.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct EncodeArgs {
  EncodeFolderOptions opts;
  std::string videos;
  std::string vae, device = "cpu";
  std::string text_encoder, tokenizer, t5_dtype = "fp32", clean_caption = "full";
  int64_t max_length = 120;
  int threads = 0;
  bool quiet = false;
};

// Captions: T5 features stored beside each latent (PixArt's text path, as encode-text computes it).
// The returned encoder must outlive the encoding (a.opts.caption_encoder refers to it).
std::unique_ptr<T5Conditioner> load_caption_encoder(EncodeArgs& a, const torch::Device& device, Log& log) {
  if (a.opts.captions.empty()) return nullptr;
  if (a.text_encoder.empty()) fail("--captions needs --text-encoder DIR (T5; a pipeline folder works too)");
  T5LoadOptions to;
  to.dtype = parse_t5_dtype(a.t5_dtype);
  to.device = device;
  to.log = [&log](const std::string& m) { log.info(m); };
  auto t5 = std::make_unique<T5Conditioner>(a.text_encoder, a.tokenizer, to);
  const auto cleaning = parse_caption_cleaning(a.clean_caption);
  auto& enc = a.opts.caption_encoder;
  enc.tokens = a.max_length;
  enc.channels = t5->encoder()->config().d_model;
  enc.name = t5->paths().text_encoder + " (" + a.t5_dtype + ", cleaning " + a.clean_caption + ")";
  enc.encode = [t5 = t5.get(), cleaning, L = a.max_length](const std::vector<std::string>& texts) {
    auto e = t5->encode(texts, L, cleaning);
    return std::make_pair(e.last_hidden_state, e.attention_mask);
  };
  log.stage("loaded T5 " + t5->paths().text_encoder + " and tokenizer " + t5->paths().tokenizer);
  return t5;
}

void run_encode(EncodeArgs a) {
  set_threads(a.threads);
  Log log(a.quiet);
  const auto device = parse_device(a.device);
  const bool video = !a.videos.empty();
  const bool jsonl = !a.opts.captions.empty() && a.opts.captions != "txt";
  if (video && !a.opts.images_dir.empty()) fail("encode: give either --images ROOT or --videos ROOT, not both");
  if (!video && a.opts.images_dir.empty() && !jsonl)
    fail("encode needs --images ROOT, --videos ROOT or --captions FILE.jsonl");
  if (video && !a.opts.captions.empty()) fail("encode: --captions applies to images, not to --videos");
  if (video) a.opts.images_dir = a.videos;
  auto vae = load_vae(a.vae);
  vae->to(device);
  log.stage("loaded VAE " + a.vae);
  const auto t5 = load_caption_encoder(a, device, log);
  std::unique_ptr<ProgressBar> progress;
  a.opts.progress = [&](int64_t done, int64_t total) {
    if (!progress) progress = std::make_unique<ProgressBar>("encoding", total, a.quiet);
    progress->update(done);
  };
  auto r = video ? encode_video_folder(vae, a.opts) : encode_image_folder(vae, a.opts);
  if (progress) progress->finish();
  const std::string what = a.opts.captions.empty() ? std::to_string(r.classes.size()) + " classes" : "captions";
  log.stage("encoded " + std::to_string(r.images) + (video ? " clips" : " images") + " with " + what + " into " +
            std::to_string(r.samples) + " samples in " + a.opts.out_dir);
  if (r.skipped_files > 0)
    log.info("ignored " + std::to_string(r.skipped_files) +
             (video                    ? " entries that are neither clip folders nor videos"
              : a.opts.captions.empty() ? " files without an image extension"
                                        : " images without a caption file"));
}

}  // namespace

void register_encode(CLI::App& app) {
  auto a = std::make_shared<EncodeArgs>();
  auto* c = app.add_subcommand("encode", "Encode an ImageFolder tree (ROOT/<class>/<image>), captioned images, or a "
                                         "video folder (ROOT/<class>/<clip>) into a latent dataset");
  c->add_option("--vae", a->vae, "diffusers VAE folder (config.json + diffusion_pytorch_model.safetensors)")->required();
  c->add_option("--images", a->opts.images_dir, "image root; classes = sorted sub-folder names (unless --captions)");
  c->add_option("--videos", a->videos,
                "video root ROOT/<class>/<clip>: clips are folders of frames or video files (.mp4 .webm .mkv .avi "
                ".mov .gif .webp); latents are stored (F, C, h, w) per clip");
  c->add_option("--frames", a->opts.frames, "video clips: frames per sample")->capture_default_str();
  c->add_option("--frame-interval", a->opts.frame_interval, "video clips: take every k-th frame from the first")
      ->capture_default_str();
  c->add_option("--image-size", a->opts.image_size, "ADM centre-crop size in pixels")->capture_default_str();
  c->add_option("-o,--output,--out", a->opts.out_dir, "dataset folder (meta.json + shard_NNNNN.safetensors)")->required();
  c->add_flag("--flip", a->opts.flip, "also store every image mirrored, as an extra sample");
  c->add_option("-s,--seed", a->opts.seed, "seed of the posterior sampling generator")->capture_default_str();
  c->add_option("--batch-size", a->opts.batch_size, "images per VAE forward")->capture_default_str();
  c->add_option("--shard-size", a->opts.shard_size, "samples per shard file")->capture_default_str();
  c->add_flag("--overwrite", a->opts.overwrite, "replace a dataset already in --out");
  c->add_option("--captions", a->opts.captions,
                "text-to-image data: txt (a <name>.txt caption beside every image under --images) or a JSONL file "
                "of {\"image\": PATH, \"caption\": TEXT}; T5 features are stored beside the latents");
  c->add_option("--text-encoder", a->text_encoder, "T5 folder for --captions (or a pipeline folder)");
  c->add_option("--tokenizer", a->tokenizer, "folder with spiece.model (default: beside the text encoder)");
  c->add_option("--t5-dtype", a->t5_dtype, "fp32 | bf16")->capture_default_str();
  c->add_option("--max-length", a->max_length, "caption tokens (PixArt: 120)")->capture_default_str();
  c->add_option("--clean-caption", a->clean_caption, "none | basic | full")->capture_default_str();
  c->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  c->add_flag("-q,--quiet", a->quiet, "print nothing but errors");
  c->callback([a] { run_encode(*a); });
}

}  // namespace sdit::cli

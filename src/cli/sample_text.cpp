#include "cli/sample_text.h"

#include <filesystem>
#include <sstream>

#include "conditioning/t5_conditioner.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "models/registry.h"
#include "util/compat.h"
#include "util/error.h"
#include "util/memory.h"

namespace sdit::cli {
namespace {

namespace fs = std::filesystem;

const torch::Tensor* first_of(const StateDict& sd, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (const auto* t = sd.find(n)) return t;
  return nullptr;
}

torch::Tensor features(const torch::Tensor& t, const std::string& what, const std::string& path) {
  auto e = t;
  if (e.dim() == 4 && e.size(1) == 1) e = e.squeeze(1);  // (n, 1, L, Cc) as PixArt's caption_embs
  if (e.dim() != 3 || !torch::isFloatingType(e.scalar_type()))
    fail(path, ": '", what, "' has shape ", shape_str(t.sizes().vec()), ", expected floating (n, L, C) or (n, 1, L, C)");
  return e.to(torch::kFloat32).contiguous();
}

torch::Tensor mask_for(const torch::Tensor* m, const torch::Tensor& embs, const std::string& what, const std::string& path) {
  if (!m) return torch::ones({embs.size(0), embs.size(1)}, torch::kLong);
  if (m->dim() != 2 || m->size(0) != embs.size(0) || m->size(1) != embs.size(1) || torch::isFloatingType(m->scalar_type()))
    fail(path, ": '", what, "' has shape ", shape_str(m->sizes().vec()), ", expected integer (", embs.size(0), ", ",
         embs.size(1), ")");
  return m->to(torch::kLong).contiguous();
}

// The caption tensors of a --caption-embeddings file, in the names PixArt's inference uses
// (caption_embs, emb_masks) or that `encode-text` writes (last_hidden_state, attention_mask).
CaptionFeatures read_caption_file(const std::string& path) {
  const StateDict sd = load_checkpoint(path);
  CaptionFeatures f;
  f.source = path;
  const auto* e = first_of(sd, {"caption_embs", "last_hidden_state"});
  if (!e)
    fail(path, " holds no caption features: expected 'caption_embs' (+ 'emb_masks') or encode-text's "
         "'last_hidden_state' (+ 'attention_mask')");
  f.embs = features(*e, sd.contains("caption_embs") ? "caption_embs" : "last_hidden_state", path);
  if (f.embs.size(0) == 0) fail(path, ": no captions");
  f.masks = mask_for(first_of(sd, {"emb_masks", "attention_mask"}), f.embs, "emb_masks", path);
  if (const auto* u = sd.find("uncond_embs")) {
    f.uncond_embs = features(*u, "uncond_embs", path);
    f.uncond_masks = mask_for(sd.find("uncond_masks"), f.uncond_embs, "uncond_masks", path);
    const int64_t rows = f.uncond_embs.size(0), n = f.embs.size(0);
    if (rows != n && rows != 1) fail(path, ": 'uncond_embs' has ", rows, " rows for ", n, " captions (give 1 or ", n, ")");
    if (rows == 1 && n > 1) {
      f.uncond_embs = f.uncond_embs.expand({n, -1, -1}).contiguous();
      f.uncond_masks = f.uncond_masks.expand({n, -1}).contiguous();
    }
    if (f.uncond_embs.size(1) != f.embs.size(1) || f.uncond_embs.size(2) != f.embs.size(2))
      fail(path, ": 'uncond_embs' are ", f.uncond_embs.size(1), " tokens x ", f.uncond_embs.size(2),
           " channels, the captions ", f.embs.size(1), " x ", f.embs.size(2), " (they run in one batch)");
  }
  return f;
}

// The micro-conditions of the output size, one row per sample.
void add_size_conditions(Conditioning& c, const Model& model, int64_t h_px, int64_t w_px, bool exact, int64_t n) {
  const auto& f = family(model.spec().family);
  if (!model.latent().size_conditions || !f.size_conditions) return;
  const Conditioning s = f.size_conditions(model.spec(), SizeRequest{h_px, w_px, exact});
  if (s.img_hw.defined()) c.img_hw = s.img_hw.expand({n, -1}).contiguous();
  if (s.aspect_ratio.defined()) c.aspect_ratio = s.aspect_ratio.expand({n, -1}).contiguous();
}

std::string join_prompts(const std::vector<std::string>& p) {
  std::ostringstream os;
  for (size_t i = 0; i < p.size(); ++i) os << (i ? " | " : "") << p[i];
  return os.str();
}

}  // namespace

bool is_pipeline_folder(const std::string& ckpt) {
  return is_directory(ckpt) && is_regular_file((fs::path(ckpt) / "model_index.json").string());
}

void add_text_flags(CLI::App* c, TextFlags& f) {
  auto& o = f.opts;
  o["prompt"] = c->add_option("-p,--prompt", f.prompts, "prompt(s) of a text-to-image model (encoded with T5)");
  o["negative"] = c->add_option("-n,--negative-prompt", f.negative,
                                "negative prompt (one, or one per prompt): the unconditional branch, encoded with T5");
  o["caption_embeddings"] = c->add_option(
      "--caption-embeddings", f.caption_embeddings,
      "caption features instead of prompts: caption_embs (n,[1,]L,C) + emb_masks (n,L) [+ uncond_embs, "
      "uncond_masks], or what encode-text writes");
  o["text_encoder"] = c->add_option("--text-encoder", f.text_encoder, "T5 folder (default: the pipeline's text_encoder/)");
  o["tokenizer"] = c->add_option("--tokenizer", f.tokenizer, "folder with spiece.model (default: the pipeline's tokenizer/)");
  o["t5_dtype"] = c->add_option("--t5-dtype", f.t5_dtype, "T5 weights: fp32 (the reference) | bf16")->capture_default_str();
  o["clean_caption"] = c->add_option("--clean-caption", f.clean_caption,
                                     "prompt cleaning before T5: none | basic | full (PixArt's and diffusers' default)")
                           ->capture_default_str();
  o["width"] = c->add_option("-W,--width", f.width, "output width in pixels (default: the model's size)");
  o["height"] = c->add_option("-H,--height", f.height, "output height in pixels (default: the model's size)");
  o["ar"] = c->add_option("--ar", f.ar,
                          "aspect-ratio micro-condition: bucket (the closest bucket key, as PixArt's inference.py) "
                          "| exact (height/width, as diffusers)")
                ->capture_default_str();
  o["snap"] = c->add_flag("--snap-to-bucket", f.snap_to_bucket, "move -W/-H to the closest aspect-ratio bucket size first");
  o["null_caption"] = c->add_option(
      "--null-caption", f.null_caption,
      "unconditional branch: learned (the model's y_embedding with the prompt's mask, PixArt's own) | empty-prompt "
      "(T5 of \"\" or the file's uncond_embs, diffusers'); default: the checkpoint layout's own");
  o["cfg_drop_mask"] = c->add_flag("--cfg-drop-mask", f.cfg_drop_mask,
                                   "reproduce PixArtMS.forward_with_cfg's quirk: the guided iddpm forward attends to "
                                   "every caption token, padding included (off: the masks are used)");
}

std::pair<int64_t, int64_t> requested_latent_size(const TextFlags& f, const Model& model, Log& log) {
  const LatentSpec& l = model.latent();
  const int64_t ds = l.vae_downscale;
  if (f.width < 0 || f.height < 0) fail("-W/-H must be positive");
  SizeRequest r{f.height > 0 ? f.height : l.height * ds, f.width > 0 ? f.width : l.width * ds, f.ar == "exact"};
  if (f.snap_to_bucket) {
    const auto& fam = family(model.spec().family);
    if (!fam.snap_to_bucket || !l.size_conditions)
      fail("--snap-to-bucket: this ", model.name(), " has no aspect-ratio buckets (it takes one size)");
    const SizeRequest s = fam.snap_to_bucket(model.spec(), r);
    log.info("size: " + std::to_string(r.width) + "x" + std::to_string(r.height) + " px snapped to the bucket " +
             std::to_string(s.width) + "x" + std::to_string(s.height));
    r = s;
  }
  if (r.height % ds != 0 || r.width % ds != 0)
    fail("-W/-H ", r.width, "x", r.height, " px: both must be multiples of ", ds, " (the VAE's downscale)");
  l.grid(r.height / ds, r.width / ds);  // the model's own size checks (fixed size, patch multiple)
  return {r.height / ds, r.width / ds};
}

namespace {

// The unconditional branch: explicit (a negative prompt, a file's uncond_embs) or the layout's own
// (a learned null caption when the checkpoint holds one, else the T5 encoding of "").
std::string null_mode(const TextFlags& f, bool learned_in_file, bool explicit_uncond) {
  if (!f.null_caption.empty() && f.null_caption != "learned" && f.null_caption != "empty-prompt")
    fail("--null-caption must be learned or empty-prompt, got '", f.null_caption, "'");
  if (f.null_caption == "learned" && !f.negative.empty())
    fail("--null-caption learned and a negative prompt exclude each other (the negative prompt is the unconditional "
         "branch)");
  if (!f.null_caption.empty()) return f.null_caption;
  return explicit_uncond || !learned_in_file ? "empty-prompt" : "learned";
}

}  // namespace

std::string peak_memory(const torch::Device& device) {
  auto gib = [](int64_t bytes) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return std::string(b);
  };
  std::string out;
  const int64_t rss = process_peak_rss_bytes();
  if (rss > 0) out += "peak RSS " + gib(rss);
  const int64_t gpu = compat::cuda_peak_bytes(device);
  if (gpu >= 0) out += std::string(out.empty() ? "" : ", ") + "peak GPU " + gib(gpu);
  return out.empty() ? "" : " (" + out + ")";
}

std::optional<CaptionFeatures> encode_prompts(const TextFlags& f, const std::string& ckpt, LoadOptions lo,
                                              const torch::Device& device, Log& log) {
  if (f.prompts.empty()) return std::nullopt;
  if (!f.caption_embeddings.empty())
    fail("a text-to-image model needs exactly one of -p/--prompt TEXT or --caption-embeddings FILE");
  // The checkpoint's caption length and null caption, without building it (its tensors are dropped
  // again before T5 loads).
  lo.heads_required = false;
  const ModelSpec spec = detect_spec(native_state_dict(load_checkpoint(ckpt)), lo);
  const LatentSpec l = family(spec.family).latent(spec);
  if (l.cond != CondKind::Text)
    fail("-p/--prompt applies to text-to-image models; ", ckpt, " holds a ", display_name(spec));
  const std::string mode = null_mode(f, spec.config.value("null_caption", false), !f.negative.empty());
  std::vector<std::string> uncond;
  if (!f.negative.empty()) {
    if (f.negative.size() != 1 && f.negative.size() != f.prompts.size())
      fail("give one negative prompt, or one per prompt (", f.prompts.size(), "); got ", f.negative.size());
    uncond = f.negative;
  } else if (mode == "empty-prompt") {
    uncond = {""};  // diffusers' default negative prompt
  }
  std::string te = f.text_encoder;
  if (te.empty()) {
    if (!is_pipeline_folder(ckpt))
      fail("-p needs the T5 text encoder: pass --text-encoder DIR (t5-v1_1-xxl, or a pipeline folder), or --ckpt a "
           "diffusers pipeline folder that holds text_encoder/ and tokenizer/");
    te = ckpt;
  }
  T5LoadOptions opt;
  opt.dtype = parse_t5_dtype(f.t5_dtype);
  opt.device = device;
  opt.log = [&](const std::string& m) { log.info(m); };
  reset_process_peak_rss();
  compat::cuda_reset_peak(device);
  T5Conditioner t5(te, f.tokenizer, opt);
  log.stage("loaded T5 " + t5.paths().text_encoder + " (" + std::to_string(t5.encoder()->config().num_layers) +
            " layers, d_model " + std::to_string(t5.encoder()->config().d_model) + ", " + f.t5_dtype + ")" +
            peak_memory(device));
  std::vector<std::string> all = f.prompts;
  all.insert(all.end(), uncond.begin(), uncond.end());
  const TextEncoding e = t5.encode(all, l.context_len, parse_caption_cleaning(f.clean_caption), 8);
  t5.release();
  log.stage("encoded " + std::to_string(f.prompts.size()) + " prompt(s)" +
            (uncond.empty() ? "" : " and " + std::to_string(uncond.size()) + " unconditional") + " at " +
            std::to_string(l.context_len) + " tokens, caption cleaning " + f.clean_caption +
            "; freed the text encoder" + peak_memory(device));
  const int64_t n = static_cast<int64_t>(f.prompts.size());
  CaptionFeatures out;
  out.embs = e.last_hidden_state.narrow(0, 0, n);
  out.masks = e.attention_mask.narrow(0, 0, n);
  if (!uncond.empty()) {
    const int64_t u = static_cast<int64_t>(uncond.size());
    out.uncond_embs = e.last_hidden_state.narrow(0, n, u).expand({n, -1, -1}).contiguous();
    out.uncond_masks = e.attention_mask.narrow(0, n, u).expand({n, -1}).contiguous();
  }
  out.source = "prompts \"" + join_prompts(f.prompts) + "\"" +
               (f.negative.empty() ? "" : ", negative \"" + join_prompts(f.negative) + "\"");
  return out;
}

TextConditioning text_conditioning(const TextFlags& f, const Model& model, const std::optional<CaptionFeatures>& encoded,
                                   const std::string& sampler, Log& log) {
  if (f.ar != "bucket" && f.ar != "exact") fail("--ar must be bucket or exact, got '", f.ar, "'");
  if (f.prompts.empty() == f.caption_embeddings.empty())
    fail("a text-to-image model needs exactly one of -p/--prompt TEXT or --caption-embeddings FILE");
  if (!f.caption_embeddings.empty() && !f.negative.empty())
    fail("-n/--negative-prompt needs -p (T5); with --caption-embeddings give uncond_embs in the file");
  TextConditioning out;
  const auto [lh, lw] = requested_latent_size(f, model, log);
  out.latent_height = lh;
  out.latent_width = lw;
  CaptionFeatures feats;
  if (encoded) {
    feats = *encoded;
  } else {
    feats = read_caption_file(f.caption_embeddings);
    log.stage("read " + std::to_string(feats.embs.size(0)) + " caption(s) of " + std::to_string(feats.embs.size(1)) +
              " tokens from " + f.caption_embeddings);
    feats.source = std::to_string(feats.embs.size(0)) + " caption(s) from " + f.caption_embeddings;
  }
  const LatentSpec& l = model.latent();
  if (feats.embs.size(2) != l.context_dim)
    fail("the caption features have ", feats.embs.size(2), " channels but ", model.name(), " takes ", l.context_dim,
         " (T5 d_model)");
  const int64_t n = feats.embs.size(0);
  out.description = feats.source;
  out.cond.context = feats.embs;
  out.cond.context_mask = feats.masks;
  const int64_t ds = l.vae_downscale;
  add_size_conditions(out.cond, model, lh * ds, lw * ds, f.ar == "exact", n);

  const bool learned = model.spec().config.value("null_caption", false);
  const std::string mode = null_mode(f, learned, feats.uncond_embs.defined());
  if (mode == "empty-prompt") {
    if (!feats.uncond_embs.defined())
      fail("the unconditional branch of this ", model.name(), " is the T5 encoding of the empty prompt (",
           learned ? "--null-caption empty-prompt" : "it has no learned null caption",
           "): give uncond_embs in --caption-embeddings, or use -p with T5", learned ? ", or --null-caption learned" : "");
    Conditioning u = out.cond;
    u.context = feats.uncond_embs;
    u.context_mask = feats.uncond_masks;
    out.uncond = u;
    out.description += encoded ? "; null caption: T5 of the negative prompt with its own mask (diffusers' convention)"
                               : "; null caption: the file's uncond_embs with their own masks (diffusers' convention)";
  } else {
    out.description += "; null caption: the learned y_embedding with the prompts' masks (PixArt's convention)";
  }
  if (f.cfg_drop_mask) {
    if (sampler == "dpm-solver")
      fail("--cfg-drop-mask reproduces forward_with_cfg (iddpm); PixArt's DPM-Solver passes the masks");
    out.cond.context_mask = torch::Tensor();
    if (out.uncond) out.uncond->context_mask = torch::Tensor();
    out.description += "; masks dropped in the guided forward (PixArtMS.forward_with_cfg)";
  }
  return out;
}

}  // namespace sdit::cli

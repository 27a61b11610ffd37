#pragma once
// The text side of `sparsedit sample` for caption-conditioned models (PixArt): caption features from a
// file (--caption-embeddings) or from prompts through T5 (-p/-n), the unconditional branch (the
// model's learned null caption, or the T5 features of a negative / empty prompt), the output size in
// pixels (-W/-H) and the micro-conditions it implies. Family-agnostic: the model's LatentSpec and
// its family's optional size rows (models/registry.h) say what to build.
#include <CLI/CLI.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "models/model.h"

namespace sdit::cli {

struct TextFlags {
  std::vector<std::string> prompts, negative;
  std::string caption_embeddings, text_encoder, tokenizer, null_caption, ar = "bucket", t5_dtype = "fp32",
      clean_caption = "full";
  int64_t width = 0, height = 0;  // pixels
  bool snap_to_bucket = false;
  bool cfg_drop_mask = false;     // PixArtMS.forward_with_cfg's quirk
  std::map<std::string, CLI::Option*> opts;
  bool given(const std::string& name) const { return opts.count(name) && opts.at(name)->count() > 0; }
};

void add_text_flags(CLI::App* cmd, TextFlags& f);

// Caption features of the samples, and of their unconditional branch when it is explicit (a negative or
// empty prompt, a file's uncond_embs): rows (n, L, D) with masks (n, L).
struct CaptionFeatures {
  torch::Tensor embs, masks, uncond_embs, uncond_masks;
  std::string source;  // for the log and the PNG's parameters
};

// -p/-n through T5, run before the transformer is loaded: the checkpoint is only inspected for its
// caption length and null caption, and the encoder (the XXL one: 19 GB in fp32) is freed on return.
// nullopt without -p. Logs stage times and peak memory.
std::optional<CaptionFeatures> encode_prompts(const TextFlags& f, const std::string& ckpt, LoadOptions lo,
                                              const torch::Device& device, Log& log);

// What a text-conditioned request samples: one row per caption, the unconditional rows when they do
// not come from the model's own null caption, and the latent size.
struct TextConditioning {
  Conditioning cond;
  std::optional<Conditioning> uncond;
  int64_t latent_height = 0, latent_width = 0;
  std::string description;  // prompts or "N captions from FILE"; the null caption used
};

// The output size (-W/-H, snapped when asked) of any model: pixels -> latent pixels, checked.
std::pair<int64_t, int64_t> requested_latent_size(const TextFlags& f, const Model& model, Log& log);

// The request's conditioning from encode_prompts' features or the --caption-embeddings file, the output
// size and its micro-conditions; `sampler` decides whether --cfg-drop-mask applies.
TextConditioning text_conditioning(const TextFlags& f, const Model& model, const std::optional<CaptionFeatures>& encoded,
                                   const std::string& sampler, Log& log);

// " (peak RSS 9.18 GiB, peak GPU 1.20 GiB)" for stage lines; "" where neither is known.
std::string peak_memory(const torch::Device& device);

// True when `ckpt` is a whole diffusers pipeline folder (model_index.json beside transformer/).
bool is_pipeline_folder(const std::string& ckpt);

}  // namespace sdit::cli

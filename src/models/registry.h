#pragma once
// The table of denoiser families, one row each (as llama.cpp's architecture table and sd.cpp's
// version detection from tensor names). Adding a family = a models/<family>.{h,cpp} pair plus one
// row in registry.cpp; nothing above models/ changes.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/state_dict.h"
#include "models/backbone.h"
#include "models/flops.h"

namespace sdit {

struct LoadOptions {
  std::optional<int64_t> num_heads;  // head counts cannot be read from shapes
  // false: a head count that neither the file nor a default fixes is left 0 ("unknown") instead of
  // an error; only for describing a checkpoint, never for building it.
  bool heads_required = true;
  // Config values a file cannot hold, given on the command line (PixArt's lewei_scale); keys as in
  // the family's config JSON. A family ignores the keys it does not have.
  nlohmann::json config = nlohmann::json::object();
};

// How a family's reference sampling script runs, used where the user and the checkpoint say
// nothing: the CLI's defaults and the pipeline's RNG order.
struct SamplingDefaults {
  std::string sampler = "ddpm";
  std::string steps = "250";
  double cfg_scale = 4.0;        // DiT's sample.py; Latte's UCF101 config 7.0, PixArt 4.5
  int64_t guided_channels = 3;   // DiT's release guides 3 of its 4 eps channels; -1: all (Latte)
  std::string class_labels;      // the CLI's --class-labels default ("" keeps the CLI's own)
  // The script draws class labels with randint right after z, from the same generator (Latte's
  // sample.py), so the per-step noise that follows starts after that draw even when labels are given.
  bool labels_after_noise = false;
};

// The output size a text-to-image request asks for, in image pixels.
struct SizeRequest {
  int64_t height = 0, width = 0;
  bool exact_ratio = false;  // aspect ratio = height / width (diffusers) instead of the nearest bucket key
};

// Settings a user may change on a preset or a fresh model (bench, train, flops); unset = keep.
struct SpecOverrides {
  std::optional<int64_t> hidden_size, depth, patch_size, num_heads;
  std::optional<int64_t> height, width;  // latent size
  std::optional<int64_t> in_channels, num_classes;  // what the training data has
  std::optional<int64_t> frames;                     // video models; an image family refuses frames > 1
  std::optional<int64_t> context_len, context_dim;  // its captions' tokens and channels (text models)
};

// A model in its family's diffusers layout: the tensors, config.json, and what that layout drops.
struct DiffusersFolder {
  StateDict tensors;
  nlohmann::json config;
  std::vector<std::string> dropped;
};

struct Family {
  std::string name;         // "DiT"
  std::string sparse_name;  // "SparseDiT"
  std::string presets;      // for help texts: "DiT-S/2 ... DiT-XL/8"
  // True when the state dict (own key names) is this family's.
  std::function<bool(const StateDict&)> recognizes;
  // A foreign layout of this family (e.g. diffusers) rewritten to our names; nullopt when not one.
  std::function<std::optional<StateDict>(const StateDict&)> from_foreign;
  // Config and layout from the tensors (and the file's metadata); errors name the tensor.
  std::function<ModelSpec(const StateDict&, const LoadOptions&)> detect;
  // A published config by name ("DiT-XL/2"); nullopt when the name is not this family's.
  std::function<std::optional<ModelSpec>(const std::string&)> preset;
  std::function<ModelSpec(ModelSpec, const SpecOverrides&)> apply_overrides;
  std::function<std::unique_ptr<Backbone>(const ModelSpec&)> build;
  std::function<LatentSpec(const ModelSpec&)> latent;
  // MACs of one forward of one sample on `dense` tokens, the SDTMs pooling to `sparse`.
  std::function<FlopsReport(const ModelSpec&, const Grid& dense, const Grid& sparse)> flops;
  // (label, value) lines for `sparsedit info` and one-line descriptions.
  std::function<std::vector<std::pair<std::string, std::string>>(const ModelSpec&)> describe;

  // Optional rows (empty: the family has none of these).
  std::function<SamplingDefaults(const ModelSpec&)> sampling_defaults;
  // The micro-conditions of an output of that size (PixArt-MS: img_hw and aspect_ratio, one row).
  std::function<Conditioning(const ModelSpec&, const SizeRequest&)> size_conditions;
  // The size of the family's resolution bucket closest to a requested one (PixArt-MS's table).
  std::function<SizeRequest(const ModelSpec&, const SizeRequest&)> snap_to_bucket;
  // The inverse of from_foreign: native tensors (and config) in diffusers' layout, for `convert --diffusers`.
  std::function<DiffusersFolder(const StateDict& native, const ModelSpec&)> to_diffusers;
  // The SparseDiT layout when the user gives none; empty: SparseLayout::default_for_depth. A family
  // whose blocks constrain where sparse-gen and recovery may sit (Latte: spatial blocks only) sets it.
  std::function<SparseLayout(const ModelSpec&)> default_layout;
};

const std::vector<Family>& families();
const Family& family(const std::string& name);  // throws with the known names

// The model part of a checkpoint in our key names: training state stripped, a foreign layout
// rewritten by the family that owns it.
StateDict native_state_dict(const StateDict& sd);
// The family that recognises `native` (from native_state_dict); throws listing what is known.
const Family& family_of(const StateDict& native);
ModelSpec detect_spec(const StateDict& native, const LoadOptions& opt = {});
// "DiT-XL/2", "PixArt-XL/2", ...; throws listing every family's presets.
ModelSpec preset_spec(const std::string& name);
// The family's default SparseDiT layout for the spec's depth (Family::default_layout).
SparseLayout default_layout(const ModelSpec& spec);
// Every family's presets, for help texts: "DiT-S/2 ... PixArt-XL/2".
std::string all_presets();
// The family's display name: "DiT" or "SparseDiT" etc.
std::string display_name(const ModelSpec& spec);
// One line: "SparseDiT (hidden 64, depth 6, ...)".
std::string describe_line(const ModelSpec& spec);
// The family's sampling defaults (DiT's sample.py when the family sets none).
SamplingDefaults sampling_defaults(const ModelSpec& spec);

}  // namespace sdit

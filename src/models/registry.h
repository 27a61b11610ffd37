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
};

// Settings a user may change on a preset or a fresh model (bench, train, flops); unset = keep.
struct SpecOverrides {
  std::optional<int64_t> hidden_size, depth, patch_size, num_heads;
  std::optional<int64_t> height, width;  // latent size
  std::optional<int64_t> in_channels, num_classes;  // what the training data has
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
// The family's display name: "DiT" or "SparseDiT" etc.
std::string display_name(const ModelSpec& spec);
// One line: "SparseDiT (hidden 64, depth 6, ...)".
std::string describe_line(const ModelSpec& spec);

}  // namespace sdit

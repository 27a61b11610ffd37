#include "models/registry.h"

#include <sstream>

#include "models/dit.h"
#include "models/latte.h"
#include "models/pixart.h"
#include "util/error.h"

namespace sdit {

const std::vector<Family>& families() {
  // Order matters where key sets overlap: a family whose checkpoints hold extra distinctive tensors
  // (Latte's temp_embed, PixArt's t_block) must come before DiT, whose test is the most general.
  static const std::vector<Family> table = {pixart_family(), latte_family(), dit_family()};
  return table;
}

const Family& family(const std::string& name) {
  std::string known;
  for (const auto& f : families()) {
    if (f.name == name) return f;
    known += (known.empty() ? "" : ", ") + f.name;
  }
  fail("unknown model family '", name, "' (known: ", known, ")");
}

StateDict native_state_dict(const StateDict& sd_in) {
  StateDict sd = without_training_state(sd_in);
  for (const auto& f : families()) {
    if (auto native = f.from_foreign(sd)) {
      sd = std::move(*native);
      break;
    }
  }
  // Where the tensors came from matters for loading only; a model written back carries none of it.
  sd.metadata.erase("diffusers_config");
  sd.metadata.erase("source_file");
  return sd;
}

const Family& family_of(const StateDict& native) {
  for (const auto& f : families())
    if (f.recognizes(native)) return f;
  std::string known;
  for (const auto& f : families()) known += (known.empty() ? "" : ", ") + f.name + "/" + f.sparse_name;
  fail("not a checkpoint of a known model family (", known, "): none recognises its tensor names");
}

ModelSpec detect_spec(const StateDict& native, const LoadOptions& opt) { return family_of(native).detect(native, opt); }

ModelSpec preset_spec(const std::string& name) {
  for (const auto& f : families())
    if (auto s = f.preset(name)) return *s;
  fail("unknown model '", name, "'; valid: ", all_presets());
}

std::string all_presets() {
  std::string all;
  for (const auto& f : families()) all += (all.empty() ? "" : " ") + f.presets;
  return all;
}

SparseLayout default_layout(const ModelSpec& spec) {
  const auto& f = family(spec.family);
  if (f.default_layout) return f.default_layout(spec);
  return SparseLayout::default_for_depth(spec.config.value("depth", int64_t{0}));
}

std::string display_name(const ModelSpec& spec) {
  const auto& f = family(spec.family);
  return spec.sparse() ? f.sparse_name : f.name;
}

std::string describe_line(const ModelSpec& spec) {
  std::ostringstream os;
  os << display_name(spec) << " (";
  bool first = true;
  for (const auto& [k, v] : family(spec.family).describe(spec)) {
    os << (first ? "" : ", ") << k << " " << v;
    first = false;
  }
  os << ")";
  return os.str();
}

SamplingDefaults sampling_defaults(const ModelSpec& spec) {
  const auto& f = family(spec.family);
  return f.sampling_defaults ? f.sampling_defaults(spec) : SamplingDefaults{};
}

}  // namespace sdit

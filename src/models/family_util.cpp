#include "models/family_util.h"

#include <algorithm>

#include "util/error.h"

namespace sdit {

int64_t count_indexed(const StateDict& sd, const std::string& prefix) {
  int64_t n = 0;
  for (const auto& k : sd.keys()) {
    if (k.rfind(prefix, 0) != 0) continue;
    const auto rest = k.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || dot > 6) continue;
    const auto digits = rest.substr(0, dot);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    n = std::max<int64_t>(n, std::stoll(digits) + 1);
  }
  return n;
}

const torch::Tensor& need_tensor(const StateDict& sd, const std::string& key, int64_t dims, const std::string& family) {
  const auto* t = sd.find(key);
  if (!t) fail("not a ", family, " checkpoint: tensor '", key, "' is missing");
  if (t->dim() != dims) fail("tensor '", key, "' has shape ", shape_str(t->sizes().vec()), ", expected ", dims, " dims");
  return *t;
}

std::optional<SparseLayout> detect_sparse_layout(const StateDict& sd) {
  if (count_indexed(sd, "dumbbell_blocks.") == 0 && count_indexed(sd, "poolingformer_blocks.") == 0) return std::nullopt;
  SparseLayout l;
  l.poolingformers = count_indexed(sd, "poolingformer_blocks.");
  l.sdtms = count_indexed(sd, "dumbbell_blocks.");
  l.gen = count_indexed(sd, "dumbbell_blocks.0.token_merge_blocks.");
  l.sparse = count_indexed(sd, "dumbbell_blocks.0.semantic_blocks.");
  l.recovery = count_indexed(sd, "dumbbell_blocks.0.token_recover_blocks.");
  l.dense = count_indexed(sd, "dumbbell_blocks.0.normal_blocks.");
  l.top = count_indexed(sd, "normal_blocks.");
  if (l.sdtms < 1 || l.gen < 1 || l.recovery < 1) fail("SparseDiT checkpoint without complete SDTMs");
  return l;
}

nlohmann::json config_metadata(const StateDict& sd) {
  auto it = sd.metadata.find("config");
  if (it == sd.metadata.end()) return nlohmann::json::object();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    fail("the checkpoint's config metadata is not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail("the checkpoint's config metadata is not a JSON object");
  return j;
}

void check_metadata_size(const nlohmann::json& meta, const char* key, int64_t in_file, int64_t in_tensors) {
  if (meta.contains(key) && in_file != in_tensors)
    fail("the checkpoint's config metadata says ", key, " ", in_file, " but its tensors have ", in_tensors);
}

int64_t resolve_heads(const std::optional<int64_t>& from_file, int64_t hidden, const LoadOptions& opt,
                      const std::optional<int64_t>& family_default) {
  if (opt.num_heads && *opt.num_heads <= 0) fail("--num-heads must be positive");
  if (from_file && opt.num_heads && *from_file != *opt.num_heads)
    fail("--num-heads ", *opt.num_heads, " contradicts the checkpoint's config metadata (", *from_file, " heads)");
  if (from_file) return *from_file;
  if (opt.num_heads) return *opt.num_heads;
  if (family_default) return *family_default;
  if (!opt.heads_required) return 0;
  fail("cannot tell the number of attention heads for hidden size ", hidden, " (no config metadata); pass --num-heads");
}

void override_trunk_sizes(const SpecOverrides& o, int64_t& hidden, int64_t& depth, int64_t& patch, int64_t& heads,
                          int64_t& in_channels, const std::function<std::optional<int64_t>(int64_t)>& default_heads) {
  if (o.hidden_size) hidden = *o.hidden_size;
  if (o.depth) depth = *o.depth;
  if (o.patch_size) patch = *o.patch_size;
  if (o.num_heads) {
    heads = *o.num_heads;
  } else if (o.hidden_size) {
    auto h = default_heads(hidden);
    if (!h) fail("hidden size ", hidden, " has no default head count; pass --num-heads");
    heads = *h;
  }
  if (o.in_channels) in_channels = *o.in_channels;
}

std::optional<int64_t> square_side_override(const SpecOverrides& o, int64_t current, const std::string& what) {
  if (!o.height && !o.width) return std::nullopt;
  const int64_t h = o.height.value_or(current), w = o.width.value_or(current);
  if (h != w) fail(what, "; got ", h, "x", w);
  return h;
}

}  // namespace sdit

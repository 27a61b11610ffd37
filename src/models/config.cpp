#include "models/config.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <sstream>
#include <map>
#include <regex>
#include <set>

#include "io/state_dict.h"
#include "util/error.h"

namespace sdit {

using nlohmann::json;

std::string DiTConfig::to_json() const {
  json j = {{"input_size", input_size}, {"patch_size", patch_size}, {"in_channels", in_channels},
            {"hidden_size", hidden_size}, {"depth", depth},          {"num_heads", num_heads},
            {"num_classes", num_classes}, {"learn_sigma", learn_sigma}};
  return j.dump();
}

DiTConfig DiTConfig::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail("model config metadata is not valid JSON: ", e.what());
  }
  DiTConfig c;
  auto get = [&](const char* k, int64_t& v) {
    if (j.contains(k) && j[k].is_number_integer()) v = j[k].get<int64_t>();
  };
  get("input_size", c.input_size);
  get("patch_size", c.patch_size);
  get("in_channels", c.in_channels);
  get("hidden_size", c.hidden_size);
  get("depth", c.depth);
  get("num_heads", c.num_heads);
  get("num_classes", c.num_classes);
  if (j.contains("learn_sigma") && j["learn_sigma"].is_boolean()) c.learn_sigma = j["learn_sigma"].get<bool>();
  return c;
}

DiTConfig dit_preset(const std::string& name) {
  static const std::map<std::string, std::array<int64_t, 3>> sizes = {
      {"S", {384, 12, 6}}, {"B", {768, 12, 12}}, {"L", {1024, 24, 16}}, {"XL", {1152, 28, 16}}};
  std::smatch m;
  static const std::regex re(R"(DiT-(S|B|L|XL)[/-](2|4|8))");
  if (!std::regex_match(name, m, re))
    fail("unknown model '", name, "'; valid: DiT-S/2 DiT-S/4 DiT-S/8 DiT-B/2 DiT-B/4 DiT-B/8 DiT-L/2 DiT-L/4 DiT-L/8 "
         "DiT-XL/2 DiT-XL/4 DiT-XL/8");
  const auto& s = sizes.at(m[1]);
  DiTConfig c;
  c.hidden_size = s[0];
  c.depth = s[1];
  c.num_heads = s[2];
  c.patch_size = std::stoll(m[2]);
  return c;
}

std::optional<int64_t> default_heads(int64_t hidden) {
  switch (hidden) {
    case 384: return 6;
    case 768: return 12;
    case 1024: return 16;
    case 1152: return 16;
    default: return std::nullopt;
  }
}

std::string SparseLayout::str() const {
  std::ostringstream os;
  os << poolingformers << ":" << sdtms << "x" << gen << "," << sparse << "," << recovery << "," << dense << ":" << top;
  return os.str();
}

SparseLayout SparseLayout::parse(const std::string& text, std::optional<int64_t> depth) {
  static const std::regex re(R"((\d+):(\d+)x(\d+),(\d+),(\d+),(\d+):(\d+))");
  std::smatch m;
  if (!std::regex_match(text, m, re))
    fail("invalid layout '", text, "': expected P:SxG,N,R,D:T, e.g. 2:4x1,3,1,1:2 (P Poolingformers, S SDTMs of ",
         "G sparse-gen + N sparse + R recovery + D dense blocks, T top blocks)");
  SparseLayout l;
  l.poolingformers = std::stoll(m[1]);
  l.sdtms = std::stoll(m[2]);
  l.gen = std::stoll(m[3]);
  l.sparse = std::stoll(m[4]);
  l.recovery = std::stoll(m[5]);
  l.dense = std::stoll(m[6]);
  l.top = std::stoll(m[7]);
  if (l.sdtms < 1 || l.gen < 1 || l.recovery < 1)
    fail("invalid layout '", text, "': need at least one SDTM, each with a sparse-gen and a recovery block");
  if (depth && l.depth() != *depth)
    fail("layout ", text, " has ", l.poolingformers, " + ", l.sdtms, "x(", l.gen, "+", l.sparse, "+", l.recovery, "+",
         l.dense, ") + ", l.top, " = ", l.depth(), " blocks, but the model has depth ", *depth);
  return l;
}

SparseLayout SparseLayout::default_for_depth(int64_t depth) {
  // The paper's DiT-XL split (2 Poolingformers, 4 SDTMs, 2 top) for deep models, half of it for
  // shallow ones; blocks left over after equal SDTMs go to the top segment.
  SparseLayout l;
  l.poolingformers = l.top = depth >= 24 ? 2 : 1;
  l.sdtms = depth >= 24 ? 4 : 2;
  l.gen = l.recovery = l.dense = 1;
  int64_t middle = depth - l.poolingformers - l.top;
  if (middle < l.sdtms * 3) l.sdtms = 1;
  if (middle < 3) fail("depth ", depth, " is too small for a SparseDiT (needs at least 5 blocks)");
  l.sparse = middle / l.sdtms - 3;
  l.top += middle % l.sdtms;
  return l;
}

namespace {

// Largest index + 1 among keys "prefix<i>." (0 when absent).
int64_t count_indexed(const StateDict& sd, const std::string& prefix) {
  int64_t n = 0;
  for (auto& k : sd.keys()) {
    if (k.rfind(prefix, 0) != 0) continue;
    auto rest = k.substr(prefix.size());
    auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0) continue;
    try {
      n = std::max<int64_t>(n, std::stoll(rest.substr(0, dot)) + 1);
    } catch (...) {
    }
  }
  return n;
}

const torch::Tensor& need(const StateDict& sd, const std::string& key, int64_t dims) {
  const auto* t = sd.find(key);
  if (!t) fail("not a DiT checkpoint: tensor '", key, "' is missing");
  if (t->dim() != dims) fail("tensor '", key, "' has shape ", shape_str(t->sizes().vec()), ", expected ", dims, " dims");
  return *t;
}

}  // namespace

DetectedModel detect_from_weights(const StateDict& sd, std::optional<int64_t> num_heads_override) {
  DetectedModel d;
  DiTConfig& c = d.config;
  const auto& xw = need(sd, "x_embedder.proj.weight", 4);
  c.hidden_size = xw.size(0);
  c.in_channels = xw.size(1);
  c.patch_size = xw.size(2);
  const auto& pe = need(sd, "pos_embed", 3);
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pe.size(1)))));
  if (grid * grid != pe.size(1)) fail("pos_embed has ", pe.size(1), " tokens, which is not a square grid");
  c.input_size = grid * c.patch_size;
  c.num_classes = need(sd, "y_embedder.embedding_table.weight", 2).size(0) - 1;
  const int64_t out = need(sd, "final_layer.linear.weight", 2).size(0) / (c.patch_size * c.patch_size);
  c.learn_sigma = out == 2 * c.in_channels;

  if (count_indexed(sd, "dumbbell_blocks.") > 0 || count_indexed(sd, "poolingformer_blocks.") > 0) {
    d.family = ModelFamily::SparseDiT;
    SparseLayout& l = d.layout;
    l.poolingformers = count_indexed(sd, "poolingformer_blocks.");
    l.sdtms = count_indexed(sd, "dumbbell_blocks.");
    l.gen = count_indexed(sd, "dumbbell_blocks.0.token_merge_blocks.");
    l.sparse = count_indexed(sd, "dumbbell_blocks.0.semantic_blocks.");
    l.recovery = count_indexed(sd, "dumbbell_blocks.0.token_recover_blocks.");
    l.dense = count_indexed(sd, "dumbbell_blocks.0.normal_blocks.");
    l.top = count_indexed(sd, "normal_blocks.");
    if (l.sdtms < 1 || l.gen < 1 || l.recovery < 1) fail("SparseDiT checkpoint without complete SDTMs");
    c.depth = l.depth();
  } else {
    c.depth = count_indexed(sd, "blocks.");
    if (c.depth == 0) fail("not a DiT checkpoint: no 'blocks.N' tensors");
  }

  std::optional<int64_t> heads;
  auto it = sd.metadata.find("config");
  if (it != sd.metadata.end()) {
    try {
      auto j = json::parse(it->second);
      if (j.contains("num_heads") && j["num_heads"].is_number_integer()) heads = j["num_heads"].get<int64_t>();
    } catch (...) {
    }
  }
  if (!heads) heads = default_heads(c.hidden_size);
  if (num_heads_override) heads = num_heads_override;
  d.heads_known = heads.has_value();
  c.num_heads = heads.value_or(1);
  if (num_heads_override && *num_heads_override <= 0) fail("--num-heads must be positive");
  if (d.heads_known && c.hidden_size % c.num_heads != 0)
    fail("hidden size ", c.hidden_size, " is not divisible by ", c.num_heads, " heads");
  return d;
}

}  // namespace sdit

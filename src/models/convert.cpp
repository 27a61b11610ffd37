#include "models/convert.h"

#include <algorithm>
#include <set>

#include "util/error.h"

namespace sdit {

namespace {

enum class Kind { Pool, Gen, Plain, Recovery };

std::vector<std::pair<std::string, Kind>> block_prefixes(const SparseLayout& l) {
  std::vector<std::pair<std::string, Kind>> out;
  for (int64_t i = 0; i < l.poolingformers; ++i) out.emplace_back("poolingformer_blocks." + std::to_string(i), Kind::Pool);
  for (int64_t k = 0; k < l.sdtms; ++k) {
    const std::string d = "dumbbell_blocks." + std::to_string(k) + ".";
    for (int64_t j = 0; j < l.gen; ++j) out.emplace_back(d + "token_merge_blocks." + std::to_string(j), Kind::Gen);
    for (int64_t j = 0; j < l.sparse; ++j) out.emplace_back(d + "semantic_blocks." + std::to_string(j), Kind::Plain);
    for (int64_t j = 0; j < l.recovery; ++j)
      out.emplace_back(d + "token_recover_blocks." + std::to_string(j), Kind::Recovery);
    for (int64_t j = 0; j < l.dense; ++j) out.emplace_back(d + "normal_blocks." + std::to_string(j), Kind::Plain);
  }
  for (int64_t i = 0; i < l.top; ++i) out.emplace_back("normal_blocks." + std::to_string(i), Kind::Plain);
  return out;
}

}  // namespace

std::vector<std::pair<std::string, int64_t>> sparse_block_sources(const SparseLayout& layout) {
  std::vector<std::pair<std::string, int64_t>> out;
  int64_t i = 0;
  for (auto& [prefix, kind] : block_prefixes(layout)) out.emplace_back(prefix, i++);
  return out;
}

ConversionResult convert_dense_to_sparse(const StateDict& dense, const DiTConfig& cfg, const SparseLayout& layout) {
  if (layout.depth() != cfg.depth)
    fail("layout ", layout.str(), " has ", layout.poolingformers, " + ", layout.sdtms, "x", layout.blocks_per_sdtm(),
         " + ", layout.top, " = ", layout.depth(), " blocks, but the dense model has depth ", cfg.depth);
  const int64_t C = cfg.hidden_size;
  ConversionResult r;
  std::set<std::string> used;
  auto take = [&](const std::string& src, const std::string& dst, const torch::Tensor& value) {
    r.sparse.set(dst, value.contiguous());
    used.insert(src);
  };
  // Embedders and head keep their names.
  for (auto& k : dense.keys())
    if (k.rfind("blocks.", 0) != 0) take(k, k, dense.at(k));

  auto prefixes = block_prefixes(layout);
  for (size_t i = 0; i < prefixes.size(); ++i) {
    const auto& [dst, kind] = prefixes[i];
    const std::string src = "blocks." + std::to_string(i) + ".";
    for (auto& k : dense.keys()) {
      if (k.rfind(src, 0) != 0) continue;
      const std::string suffix = k.substr(src.size());
      const bool is_qkv = suffix.rfind("attn.qkv.", 0) == 0;
      if (!is_qkv || kind == Kind::Plain) {
        take(k, dst + "." + suffix, dense.at(k));
        continue;
      }
      const std::string what = suffix.substr(std::string("attn.qkv.").size());  // weight | bias
      const auto& qkv = dense.at(k);
      if (qkv.size(0) != 3 * C) fail("tensor '", k, "' has ", qkv.size(0), " rows, expected 3x", C);
      // Reported as unexpected, as the authors' load_model does: qkv itself has no place in the sparse model.
      r.unexpected.push_back(k);
      if (kind == Kind::Pool) {
        r.sparse.set(dst + ".attn.v." + what, qkv.narrow(0, 2 * C, C).contiguous());
      } else {
        r.sparse.set(dst + ".attn.q." + what, qkv.narrow(0, 0, C).contiguous());
        r.sparse.set(dst + ".attn.kv." + what, qkv.narrow(0, C, 2 * C).contiguous());
      }
    }
    if (kind == Kind::Recovery) {
      // W1 = 0, W2 = I: at the start the recovered tokens equal the dense input, X_m = X.
      auto opts = dense.at("pos_embed").options();
      r.sparse.set(dst + ".merged_layer1.weight", torch::zeros({C, C}, opts));
      r.sparse.set(dst + ".merged_layer1.bias", torch::zeros({C}, opts));
      r.sparse.set(dst + ".merged_layer2.weight", torch::eye(C, opts));
      r.sparse.set(dst + ".merged_layer2.bias", torch::zeros({C}, opts));
      for (auto n : {"merged_layer1.weight", "merged_layer1.bias", "merged_layer2.weight", "merged_layer2.bias"})
        r.missing.push_back(dst + "." + n);
    }
  }
  for (auto& k : dense.keys())
    if (!used.count(k) && std::find(r.unexpected.begin(), r.unexpected.end(), k) == r.unexpected.end())
      r.unexpected.push_back(k);
  r.sparse.metadata = dense.metadata;
  r.sparse.metadata["family"] = "SparseDiT";
  r.sparse.metadata["layout"] = layout.str();
  return r;
}

}  // namespace sdit

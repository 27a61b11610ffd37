#include "models/convert.h"

#include <algorithm>
#include <set>

#include "util/error.h"

namespace sdit {
namespace {

// The new merge layers of a recovery block: at the start the recovered tokens equal the dense
// input, X_m = W1·up(x_s) + W2·X = X.
void add_merge_layers(ConversionResult& r, const std::string& dst, int64_t C, const torch::TensorOptions& opts) {
  r.sparse.set(dst + ".merged_layer1.weight", torch::zeros({C, C}, opts));
  r.sparse.set(dst + ".merged_layer1.bias", torch::zeros({C}, opts));
  r.sparse.set(dst + ".merged_layer2.weight", torch::eye(C, opts));
  r.sparse.set(dst + ".merged_layer2.bias", torch::zeros({C}, opts));
  for (auto n : {"merged_layer1.weight", "merged_layer1.bias", "merged_layer2.weight", "merged_layer2.bias"})
    r.missing.push_back(dst + "." + n);
}

}  // namespace

ConversionResult convert_dense_to_sparse(const StateDict& dense, int64_t C, int64_t depth, const SparseLayout& layout) {
  if (layout.depth() != depth)
    fail("layout ", layout.str(), " has ", layout.poolingformers, " + ", layout.sdtms, "x", layout.blocks_per_sdtm(),
         " + ", layout.top, " = ", layout.depth(), " blocks, but the dense model has depth ", depth);
  ConversionResult r;
  std::set<std::string> used;
  // Embedders and head keep their names.
  for (const auto& k : dense.keys())
    if (k.rfind("blocks.", 0) != 0) {
      r.sparse.set(k, dense.at(k).contiguous());
      used.insert(k);
    }
  torch::TensorOptions opts = torch::kFloat32;
  for (const auto& slot : block_order(depth, &layout)) {
    const std::string src = "blocks." + std::to_string(slot.index) + ".";
    for (const auto& k : dense.keys()) {
      if (k.rfind(src, 0) != 0) continue;
      const std::string suffix = k.substr(src.size());
      const auto& value = dense.at(k);
      opts = value.options();
      if (suffix.rfind("attn.qkv.", 0) != 0 || slot.mixer == TokenMixer::Attention) {
        r.sparse.set(slot.prefix + "." + suffix, value.contiguous());
        used.insert(k);
        continue;
      }
      const std::string what = suffix.substr(std::string("attn.qkv.").size());  // weight | bias
      if (value.size(0) != 3 * C) fail("tensor '", k, "' has ", value.size(0), " rows, expected 3x", C);
      // Reported as unexpected, as the authors' load_model does: qkv itself has no place in the sparse model.
      r.unexpected.push_back(k);
      if (slot.mixer == TokenMixer::Pooling) {
        r.sparse.set(slot.prefix + ".attn.v." + what, value.narrow(0, 2 * C, C).contiguous());
      } else {
        r.sparse.set(slot.prefix + ".attn.q." + what, value.narrow(0, 0, C).contiguous());
        r.sparse.set(slot.prefix + ".attn.kv." + what, value.narrow(0, C, 2 * C).contiguous());
      }
    }
    if (slot.mixer == TokenMixer::Recovery) add_merge_layers(r, slot.prefix, C, opts);
  }
  for (const auto& k : dense.keys())
    if (!used.count(k) && std::find(r.unexpected.begin(), r.unexpected.end(), k) == r.unexpected.end())
      r.unexpected.push_back(k);
  r.sparse.metadata = dense.metadata;
  r.sparse.metadata["layout"] = layout.str();
  return r;
}

}  // namespace sdit

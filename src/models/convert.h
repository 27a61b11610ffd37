#pragma once
// Dense DiT -> SparseDiT weight mapping (SPEC §3, the authors' load_model): the SparseDiT layers in
// forward order take blocks.0..depth-1 one to one.
#include <string>
#include <vector>

#include "io/state_dict.h"
#include "models/config.h"

namespace sdit {

struct ConversionResult {
  StateDict sparse;                      // SparseDiT tensors, authors' key names
  std::vector<std::string> missing;      // new parameters (merge layers), initialised W1 = 0, W2 = I
  std::vector<std::string> unexpected;   // dense tensors with no one-to-one place (qkv of split attentions)
};

// The dense block index that each SparseDiT block prefix takes, in forward order.
std::vector<std::pair<std::string, int64_t>> sparse_block_sources(const SparseLayout& layout);

ConversionResult convert_dense_to_sparse(const StateDict& dense, const DiTConfig& cfg, const SparseLayout& layout);

}  // namespace sdit

#pragma once
// Dense → SparseDiT weight mapping (docs/method.md §3, the authors' load_model), the same for every
// family whose blocks use a fused `attn.qkv` self-attention: the SparseDiT blocks in forward order
// (block_order) take `blocks.0..depth-1` one to one. Poolingformer attn.v ← qkv rows [2C,3C);
// sparse-gen / recovery attn.q ← rows [0,C), attn.kv ← rows [C,3C); every other block tensor
// (MLP, modulation, a family's extra sub-layer such as PixArt's cross_attn) is copied by suffix;
// the merge layers start as W1 = 0, W2 = I.
#include <string>
#include <vector>

#include "io/state_dict.h"
#include "models/trunk.h"

namespace sdit {

struct ConversionResult {
  StateDict sparse;                      // the SparseDiT's tensors, authors' key names
  std::vector<std::string> missing;      // new parameters (merge layers), initialised W1 = 0, W2 = I
  std::vector<std::string> unexpected;   // dense tensors with no one-to-one place (qkv of split attentions)
};

// `dense` holds the native names of a dense model with `depth` blocks of width `hidden`; tensors
// outside `blocks.*` (embedders, head) keep their names.
ConversionResult convert_dense_to_sparse(const StateDict& dense, int64_t hidden, int64_t depth,
                                         const SparseLayout& layout);

}  // namespace sdit

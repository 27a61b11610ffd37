#pragma once
// The stack of transformer blocks between a family's embedders and its output head, dense or
// SparseDiT (docs/method.md §3), written once for every family:
//
//   dense      blocks.0 .. blocks.{depth-1}, all Attention blocks on the dense grid
//   SparseDiT  poolingformer_blocks.i                     Pooling, dense tokens
//              dumbbell_blocks.k.token_merge_blocks.j     SparseGen (pool to the sparse grid first)
//                               .semantic_blocks.j        Attention on the sparse tokens
//                               .token_recover_blocks.j   Recovery (back to the dense grid)
//                               .normal_blocks.j          Attention on the dense tokens
//              normal_blocks.i                            Attention, dense tokens (the top)
//
// Key names are the SparseDiT authors' ("dumbbell" = SDTM). The family builds each block through a
// factory given its mixer and its index in forward order, so the same trunk carries DiT's adaLN-Zero
// blocks, PixArt's adaLN-single blocks with text cross-attention, and Latte's spatial/temporal pairs.
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/block.h"

namespace sdit {

// SparseDiT segment layout, written P:SxG,N,R,D:T — e.g. 2:4x1,3,1,1:2 for DiT-XL (28 blocks).
struct SparseLayout {
  int64_t poolingformers = 2;
  int64_t sdtms = 4;
  int64_t gen = 1;       // sparse-gen (cross-attention) blocks per SDTM
  int64_t sparse = 3;    // sparse blocks per SDTM
  int64_t recovery = 1;  // dense-recovery blocks per SDTM
  int64_t dense = 1;     // dense blocks per SDTM
  int64_t top = 2;

  int64_t blocks_per_sdtm() const { return gen + sparse + recovery + dense; }
  int64_t depth() const { return poolingformers + sdtms * blocks_per_sdtm() + top; }
  std::string str() const;
  // Throws sdit::Error with the arithmetic when the layout does not add up to `depth` (if given).
  static SparseLayout parse(const std::string& text, std::optional<int64_t> depth = std::nullopt);
  // The paper's DiT-XL split for deep models (28 -> 2:4x1,3,1,1:2), half of it for shallow ones.
  static SparseLayout default_for_depth(int64_t depth);
};

// One block of the trunk in forward order: its key prefix, its mixer, and whether it runs on the
// sparse grid. The converter and the trunk both walk this table.
struct BlockSlot {
  std::string prefix;  // "blocks.3", "dumbbell_blocks.1.semantic_blocks.0", ...
  TokenMixer mixer = TokenMixer::Attention;
  bool on_sparse_tokens = false;
  int64_t index = 0;  // position in forward order = the dense model's block index it converts from
};
std::vector<BlockSlot> block_order(int64_t depth, const SparseLayout* layout);

using BlockFactory = std::function<BlockPtr(TokenMixer mixer, int64_t index)>;
// Called before block `index` (forward order) runs; returns the tokens it gets (Latte adds its
// temporal embedding before block 1).
using BlockHook = std::function<torch::Tensor(int64_t index, const torch::Tensor& x)>;

// One SDTM: pool N -> M, sparse-gen, sparse, recovery, dense blocks.
class SparseDenseTokenModuleImpl : public torch::nn::Module {
 public:
  SparseDenseTokenModuleImpl(const SparseLayout& layout, const BlockFactory& make, int64_t first_index);
  torch::Tensor forward(const torch::Tensor& dense, const BlockContext& ctx, const BlockHook& hook);
  torch::nn::ModuleList token_merge_blocks{nullptr}, semantic_blocks{nullptr}, token_recover_blocks{nullptr},
      normal_blocks{nullptr};

 private:
  int64_t first_index_;
};
TORCH_MODULE(SparseDenseTokenModule);

class Trunk {
 public:
  Trunk() = default;
  // Registers the block lists on `owner` under their checkpoint names (so keys stay flat).
  Trunk(torch::nn::Module& owner, int64_t depth, const std::optional<SparseLayout>& layout, const BlockFactory& make);

  // x: (B, ctx.dense.tokens(), C). A dense trunk ignores ctx.sparse; a SparseDiT with
  // ctx.sparse == ctx.dense computes the dense grid through its sparse blocks.
  torch::Tensor forward(torch::Tensor x, const BlockContext& ctx, const BlockHook& hook = {}) const;

  const std::optional<SparseLayout>& layout() const { return layout_; }
  int64_t depth() const { return depth_; }

 private:
  int64_t depth_ = 0;
  std::optional<SparseLayout> layout_;
  torch::nn::ModuleList blocks_{nullptr}, poolingformers_{nullptr}, sdtms_{nullptr}, top_{nullptr};
};

// The training init every family of this trunk shares (DiT's initialize_weights): xavier-uniform
// linears with zero biases, x_embedder.proj as a flattened linear, a SparseDiT's merge layers as the
// conversion sets them (W1 = 0, W2 = I: X_m = X), and zeros for every parameter `zeroed` selects (DiT's
// adaLN-Zero, PixArt's cross_attn.proj, the output layer). Draws from the global generator; the
// family's own draws (embedders, tables) follow.
void init_transformer_weights(torch::nn::Module& model, const std::function<bool(const std::string&)>& zeroed);

}  // namespace sdit

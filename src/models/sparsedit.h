#pragma once
// SparseDiT (arXiv 2412.06028): Poolingformer bottom, cascaded sparse-dense token modules (SDTMs)
// in the middle, dense DiT blocks on top. Keys follow the authors' code (poolingformer_blocks.i,
// dumbbell_blocks.k.{token_merge,semantic,token_recover,normal}_blocks.j, normal_blocks.i).
#include <torch/torch.h>

#include "models/dit.h"

namespace sdit {

// Attention replaced by the token mean of V (paper Eq. 1): attn.v, attn.proj.
class PoolAttentionImpl : public torch::nn::Module {
 public:
  explicit PoolAttentionImpl(int64_t dim);
  // The mean is taken before the V projection (exact: V is affine), O(N·C) instead of O(N²·C).
  torch::Tensor forward(const torch::Tensor& x);  // (B,N,C) -> (B,1,C), broadcast by the caller
  torch::nn::Linear v{nullptr}, proj{nullptr};
};
TORCH_MODULE(PoolAttention);

class PoolingformerBlockImpl : public AdaLNBlockImpl {
 public:
  PoolingformerBlockImpl(int64_t hidden, double mlp_ratio);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c);
  PoolAttention attn{nullptr};
};
TORCH_MODULE(PoolingformerBlock);

// Sparse-gen block (paper Eq. 2): sparse queries attend to the dense tokens, same modulation for both.
class SparseGenBlockImpl : public AdaLNBlockImpl {
 public:
  SparseGenBlockImpl(int64_t hidden, int64_t heads, double mlp_ratio);
  torch::Tensor forward(const torch::Tensor& sparse, const torch::Tensor& dense, const torch::Tensor& c);
  CrossAttention attn{nullptr};
};
TORCH_MODULE(SparseGenBlock);

// Dense-recovery block (paper Eqs. 3–4): X_m = W1·up(x_s) + W2·X, then X_m attends to the sparse tokens.
class RecoveryBlockImpl : public AdaLNBlockImpl {
 public:
  RecoveryBlockImpl(int64_t hidden, int64_t heads, double mlp_ratio);
  torch::Tensor forward(const torch::Tensor& sparse, const torch::Tensor& dense, int64_t dense_grid,
                        const torch::Tensor& c);
  CrossAttention attn{nullptr};
  torch::nn::Linear merged_layer1{nullptr}, merged_layer2{nullptr};
};
TORCH_MODULE(RecoveryBlock);

// One SDTM ("dumbbell" in the authors' code): pool N -> M, gen, sparse, recovery, dense blocks.
class SparseDenseTokenModuleImpl : public torch::nn::Module {
 public:
  SparseDenseTokenModuleImpl(const DiTConfig& cfg, const SparseLayout& layout);
  torch::Tensor forward(const torch::Tensor& dense, int64_t side, int64_t dense_grid, const torch::Tensor& c);
  torch::nn::ModuleList token_merge_blocks{nullptr}, semantic_blocks{nullptr}, token_recover_blocks{nullptr},
      normal_blocks{nullptr};
};
TORCH_MODULE(SparseDenseTokenModule);

class SparseDiTImpl : public DiTStemImpl {
 public:
  SparseDiTImpl(const DiTConfig& cfg, const SparseLayout& layout);
  // side: the sparse grid is side×side for every SDTM of this forward (1 ≤ side ≤ dense grid).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y, int64_t side);
  const SparseLayout& layout() const { return layout_; }

  torch::nn::ModuleList poolingformer_blocks{nullptr}, dumbbell_blocks{nullptr}, normal_blocks{nullptr};

 private:
  SparseLayout layout_;
};
TORCH_MODULE(SparseDiT);

// Sparse token generation: adaptive average pooling of the (B, H·W, C) token grid to side×side
// (PyTorch's window rule, windows may overlap), flattened row-major.
torch::Tensor pool_tokens(const torch::Tensor& tokens, int64_t grid, int64_t side);
// PyTorch's legacy nearest upsampling of (B, s·s, C) tokens to (B, grid·grid, C).
torch::Tensor upsample_tokens(const torch::Tensor& tokens, int64_t side, int64_t grid);

}  // namespace sdit

#pragma once
// The pieces every diffusion-transformer family is made of (DiT models.py, timm Attention/Mlp,
// PixArt's and Latte's copies of them), written once. Module names are state-dict names.
// Token tensors are (B, T, C) with T = frames·h·w ordered frame-major, then row-major (i·w + j),
// as patch embedding flattens them; every grid-aware op takes the grid explicitly (models/grid.h).
#include <torch/torch.h>

#include "models/grid.h"

namespace sdit {

// x·(1+scale)+shift; shift and scale broadcast over the tokens, e.g. (B, 1, C). One fused pass
// (addcmul) instead of the reference's multiply-then-add: equal up to float rounding.
torch::Tensor modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale);
// x + gate·y, one fused pass (the gated residual of every block).
torch::Tensor gated_residual(const torch::Tensor& x, const torch::Tensor& gate, const torch::Tensor& y);
// A Linear on (…, in) tokens with the bias folded into the GEMM: libtorch 1.13's linear runs a 3-D
// input as matmul plus a separate bias pass; a contiguous input is viewed as 2-D and fed to addmm.
torch::Tensor linear(const torch::nn::LinearImpl& l, const torch::Tensor& x);
inline torch::Tensor linear(const torch::nn::Linear& l, const torch::Tensor& x) { return linear(*l, x); }
// LayerNorm over the last dim, eps 1e-6, no affine (norm1/norm2/norm_final have no parameters).
torch::Tensor layer_norm(const torch::Tensor& x);
// Multi-head attention of q (S,Nq,C) over k,v (S,Nk,C), S independent sequences: timm's q·scale,
// q@kᵀ, softmax, @v. key_mask (S, Nk), nonzero = attend, masks keys out of each query's softmax.
torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t heads, const torch::Tensor& key_mask = {});

// Sinusoidal timestep features [cos | sin] of t (int or fractional), freqs computed in float32 on
// the CPU as the reference does.
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim = 256, double max_period = 10000.0);

// MAE 2-D sin-cos table (DiT's get_2d_sincos_pos_embed, PixArt's with base_size and lewei_scale):
// float64 math, float32 result (1, h·w, hidden); the first hidden/2 channels encode the column.
// Positions on an axis of n tokens are i / (n / base) / scale (numpy's float32 division first), so
// base = n and scale = 1 give the plain 0..n-1 of DiT. base <= 0 means "the grid itself".
torch::Tensor sincos_pos_embed_2d(int64_t hidden, int64_t h, int64_t w, double base_h = 0, double base_w = 0,
                                  double scale = 1.0);
inline torch::Tensor sincos_pos_embed_2d(int64_t hidden, int64_t grid) { return sincos_pos_embed_2d(hidden, grid, grid); }
// 1-D sin-cos table (1, n, hidden) of positions 0..n-1: [sin | cos], float64 then float32 (Latte's temp_embed).
torch::Tensor sincos_pos_embed_1d(int64_t hidden, int64_t n);

// (B, h·w, p·p·c) -> (B, c, h·p, w·p), einsum nhwpqc->nchpwq.
torch::Tensor unpatchify(const torch::Tensor& x, int64_t patch, int64_t channels, int64_t h, int64_t w);

// Sparse token generation: adaptive average pooling of (B, from.tokens(), C) to the `to` grid
// (PyTorch's window rule, windows may overlap). Per frame when the frame count stays, jointly over
// (frames, h, w) otherwise. Identity when the grids are equal.
torch::Tensor pool_tokens(const torch::Tensor& tokens, const Grid& from, const Grid& to);
// PyTorch's legacy nearest upsampling (src = ⌊dst·in/out⌋) of (B, from.tokens(), C) to `to`.
torch::Tensor upsample_tokens(const torch::Tensor& tokens, const Grid& from, const Grid& to);

class TimestepEmbedderImpl : public torch::nn::Module {
 public:
  explicit TimestepEmbedderImpl(int64_t hidden, int64_t freq_dim = 256);
  torch::Tensor forward(const torch::Tensor& t);
  torch::nn::Sequential mlp{nullptr};  // mlp.0 Linear, mlp.1 SiLU, mlp.2 Linear
 private:
  int64_t freq_dim_;
  torch::nn::Linear first_{nullptr};  // mlp.0, kept to read the parameter dtype without a lookup
};
TORCH_MODULE(TimestepEmbedder);

class LabelEmbedderImpl : public torch::nn::Module {
 public:
  LabelEmbedderImpl(int64_t num_classes, int64_t hidden, double dropout_prob = 0.1);
  // In training mode labels are replaced by the null class with probability dropout_prob (CFG),
  // unless the trainer draws the dropout coins itself (external_dropout: keyed per-sample
  // randomness, so that W ranks drop the same labels as one process; docs/distributed.md).
  torch::Tensor forward(const torch::Tensor& labels);
  torch::nn::Embedding embedding_table{nullptr};
  int64_t num_classes;
  double dropout_prob;
  bool external_dropout = false;
};
TORCH_MODULE(LabelEmbedder);

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_channels, int64_t hidden, int64_t patch);
  torch::Tensor forward(const torch::Tensor& x);  // (B,C,H,W) -> (B, h·w, hidden), row-major tokens
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class MlpImpl : public torch::nn::Module {
 public:
  // dim -> hidden -> out (out 0: dim), as timm's Mlp(in_features, hidden_features, out_features).
  MlpImpl(int64_t dim, int64_t hidden, int64_t out = 0);
  torch::Tensor forward(const torch::Tensor& x);  // fc1, GELU(tanh), fc2
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// adaLN modulation = Sequential(SiLU, Linear(C, n·C)) (keys adaLN_modulation.1.*).
torch::nn::Sequential make_adaln(int64_t hidden, int64_t chunks);

// Self-attention with a fused qkv projection: keys attn.qkv, attn.proj. x (S, N, C).
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(SelfAttention);

// Cross-attention, queries from one token set, keys/values from another (K rows first, then V):
// keys attn.q, attn.kv, attn.proj (SparseDiT's mixers), or q_linear / kv_linear / proj (PixArt's
// text cross-attention). x_q (S, Nq, C), x_kv (S, Nk, C).
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t dim, int64_t heads, const std::string& q_name = "q", const std::string& kv_name = "kv");
  torch::Tensor forward(const torch::Tensor& x_q, const torch::Tensor& x_kv, const torch::Tensor& key_mask = {});
  torch::nn::Linear q{nullptr}, kv{nullptr}, proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(CrossAttention);

// Attention replaced by the token mean of V (SparseDiT's Poolingformer, paper Eq. 1): attn.v,
// attn.proj. The mean is taken before the V projection (exact: V is affine), O(N·C) instead of
// the reference's N×N all-ones softmax. x (S, N, C) -> (S, 1, C), broadcast by the caller.
class PoolAttentionImpl : public torch::nn::Module {
 public:
  explicit PoolAttentionImpl(int64_t dim);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear v{nullptr}, proj{nullptr};
};
TORCH_MODULE(PoolAttention);

// DiT's final layer: (shift, scale) = adaLN(c), then Linear(C -> p²·out) on mod(LN(x)).
class FinalLayerImpl : public torch::nn::Module {
 public:
  FinalLayerImpl(int64_t hidden, int64_t patch, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c);  // c (B, C)
  torch::nn::Linear linear{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};
};
TORCH_MODULE(FinalLayer);

}  // namespace sdit

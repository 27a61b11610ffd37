#pragma once
// The transformer block every family is built from, dense or sparse, written once:
//
//   h = x + gate_msa · Mixer(mod(LN x, shift_msa, scale_msa))       token mixer (below)
//   h = h + Extra(h)                                                 the family's extra sub-layer, if any
//   h = h + gate_mlp · MLP(mod(LN h, shift_mlp, scale_mlp))
//
// The token mixer is the SparseDiT role of the block (docs/method.md §3):
//   Attention  self-attention over the block's tokens                  attn.qkv, attn.proj
//   Pooling    Poolingformer: the token mean of V (paper Eq. 1)          attn.v, attn.proj
//   SparseGen  sparse queries over the dense tokens (Eq. 2)              attn.q, attn.kv, attn.proj
//   Recovery   X_m = W1·up(x_s) + W2·X, X_m attends to x_s (Eqs. 3–4)    + merged_layer1, merged_layer2
// What a family supplies is the modulation (a per-block adaLN-Zero Linear, or PixArt's shared
// adaLN-single table) and the extra sub-layer (PixArt's text cross-attention): FooBlockImpl
// derives from TransformerBlockImpl and registers those under its checkpoint names.
//
// Tokens are (B, T, C) per sample, T = grid.tokens(). A spatial block mixes the tokens of each frame;
// a temporal block (video) mixes the frames at each location. Modulation is per sample (B, 1, C).
#include <torch/torch.h>

#include <memory>

#include "models/grid.h"
#include "models/layers.h"

namespace sdit {

enum class TokenMixer { Attention, Pooling, SparseGen, Recovery };
enum class BlockAxis { Spatial, Temporal };
const char* mixer_name(TokenMixer m);

// shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp as in DiT's models.py; each
// broadcasts over a sample's tokens: (B, 1, C).
struct Modulation {
  torch::Tensor shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp;
  // From six chunks along dim 1 of (B, 6, C) or (B, 6C) (then unsqueezed to (B, 1, C)).
  static Modulation from_chunks(const std::vector<torch::Tensor>& chunks);
};

// What every block of one forward shares besides its input tokens.
struct BlockContext {
  torch::Tensor c;             // (B, C) conditioning vector (adaLN-Zero); PixArt: t0 (B, 6C)
  torch::Tensor context;       // (B, L, C) projected text tokens of a cross-attention, or undefined
  torch::Tensor context_mask;  // (B, L), nonzero = attend
  Grid dense;                  // the per-sample dense token grid
  Grid sparse;                 // the grid the SDTMs pool to (== dense: no pruning)
};

class TransformerBlockImpl : public torch::nn::Module {
 public:
  struct Options {
    int64_t hidden = 0, heads = 1;
    double mlp_ratio = 4.0;
    TokenMixer mixer = TokenMixer::Attention;
    BlockAxis axis = BlockAxis::Spatial;
  };
  explicit TransformerBlockImpl(const Options& o);

  // Attention and Pooling blocks: x holds grid.tokens() tokens per sample.
  torch::Tensor forward(const torch::Tensor& x, const Grid& grid, const BlockContext& ctx);
  // SparseGen: the pooled tokens (ctx.sparse) attend to the dense ones (ctx.dense); returns sparse tokens.
  torch::Tensor forward_gen(const torch::Tensor& sparse, const torch::Tensor& dense, const BlockContext& ctx);
  // Recovery: returns dense tokens merged from the sparse ones and the SDTM's dense input.
  torch::Tensor forward_recovery(const torch::Tensor& sparse, const torch::Tensor& dense, const BlockContext& ctx);

  const Options& options() const { return opt_; }

 protected:
  virtual Modulation modulation(const BlockContext& ctx) = 0;
  virtual torch::Tensor extra(const torch::Tensor& h, const Grid& grid, const BlockContext& ctx) { return h; }

 private:
  // The residual tail shared by every mixer: gate the mixer output, the extra sub-layer, the MLP half.
  torch::Tensor finish(const torch::Tensor& x, const torch::Tensor& mixed, const Grid& grid, const BlockContext& ctx,
                       const Modulation& m);
  torch::Tensor self_attention(const torch::Tensor& x_mod, const Grid& grid);
  torch::Tensor pool_attention(const torch::Tensor& x_mod, const Grid& grid);
  torch::Tensor cross_attention(const torch::Tensor& q_in, const Grid& q_grid, const torch::Tensor& kv_in,
                                const Grid& kv_grid);

  Options opt_;

 public:
  SelfAttention self_attn{nullptr};   // registered as "attn" for Attention blocks
  PoolAttention pool_attn{nullptr};   // "attn" for Pooling blocks
  CrossAttention cross_attn{nullptr}; // "attn" for SparseGen and Recovery blocks
  Mlp mlp{nullptr};
  torch::nn::Linear merged_layer1{nullptr}, merged_layer2{nullptr};  // Recovery only
};

using BlockPtr = std::shared_ptr<TransformerBlockImpl>;

// Sequences a block mixes: (B, T, C) tokens on `grid` -> (S, n, C). Spatial: one sequence per
// frame; temporal: one per location (the tokens of every frame at that location, in frame order).
torch::Tensor to_sequences(const torch::Tensor& x, const Grid& grid, BlockAxis axis);
torch::Tensor from_sequences(const torch::Tensor& seqs, int64_t batch, const Grid& grid, BlockAxis axis);

// DiT's and Latte's block: a per-block adaLN-Zero Linear(C, 6C) on SiLU(c) (key adaLN_modulation.1).
class AdaLNZeroBlockImpl : public TransformerBlockImpl {
 public:
  explicit AdaLNZeroBlockImpl(const Options& o);
  torch::nn::Sequential adaLN_modulation{nullptr};

 protected:
  Modulation modulation(const BlockContext& ctx) override;
};

}  // namespace sdit

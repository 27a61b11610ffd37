#pragma once
// The pieces every DiT-family block is made of (DiT models.py + timm Attention/Mlp), shared by the
// dense DiT and the SparseDiT so that neither copies the other. Module names are state-dict names.
#include <torch/torch.h>

namespace sdit {

// x·(1+scale)+shift, in the reference's op order (multiply, then add) for bit-compatibility.
torch::Tensor modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale);
// LayerNorm over the last dim, eps 1e-6, no affine (norm1/norm2/norm_final have no parameters).
torch::Tensor layer_norm(const torch::Tensor& x);
// Multi-head attention of q (B,Nq,C) over k,v (B,Nk,C): timm's q·scale, q@kᵀ, softmax, @v.
torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t heads);

// Sinusoidal timestep features [cos | sin], freqs computed in float32 on the CPU as the reference does.
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim = 256, double max_period = 10000.0);

class TimestepEmbedderImpl : public torch::nn::Module {
 public:
  explicit TimestepEmbedderImpl(int64_t hidden, int64_t freq_dim = 256);
  torch::Tensor forward(const torch::Tensor& t);
  torch::nn::Sequential mlp{nullptr};  // mlp.0 Linear, mlp.1 SiLU, mlp.2 Linear
 private:
  int64_t freq_dim_;
};
TORCH_MODULE(TimestepEmbedder);

class LabelEmbedderImpl : public torch::nn::Module {
 public:
  LabelEmbedderImpl(int64_t num_classes, int64_t hidden, double dropout_prob = 0.1);
  // In training mode labels are replaced by the null class with probability dropout_prob (CFG).
  torch::Tensor forward(const torch::Tensor& labels);
  torch::nn::Embedding embedding_table{nullptr};
  int64_t num_classes;
  double dropout_prob;
};
TORCH_MODULE(LabelEmbedder);

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_channels, int64_t hidden, int64_t patch);
  torch::Tensor forward(const torch::Tensor& x);  // (B,C,H,W) -> (B, N, hidden), row-major tokens
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);  // fc1, GELU(tanh), fc2
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// adaLN modulation = Sequential(SiLU, Linear(C, n·C)) (keys adaLN_modulation.1.*), applied and chunked.
torch::nn::Sequential make_adaln(int64_t hidden, int64_t chunks);
std::vector<torch::Tensor> adaln_chunks(torch::nn::Sequential& adaln, const torch::Tensor& c, int64_t chunks);

// Self-attention with a fused qkv projection (dense DiT blocks): keys attn.qkv, attn.proj.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(SelfAttention);

// Cross-attention, queries from one token set, keys/values from another: attn.q, attn.kv, attn.proj.
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x_q, const torch::Tensor& x_kv);
  torch::nn::Linear q{nullptr}, kv{nullptr}, proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(CrossAttention);

// The adaLN-Zero block skeleton: modulation + MLP half. Concrete blocks add their attention and
// call attention_input()/finish(); this is the one place the DiT block equations live.
class AdaLNBlockImpl : public torch::nn::Module {
 public:
  AdaLNBlockImpl(int64_t hidden, double mlp_ratio);
  // The six modulation vectors (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp).
  std::vector<torch::Tensor> modulation(const torch::Tensor& c) { return adaln_chunks(adaLN_modulation, c, 6); }
  // x + gate_msa·attn_out, then x + gate_mlp·MLP(mod(LN(x))).
  torch::Tensor finish(const torch::Tensor& x, const torch::Tensor& attn_out, const std::vector<torch::Tensor>& m);
  Mlp mlp{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};
};

class FinalLayerImpl : public torch::nn::Module {
 public:
  FinalLayerImpl(int64_t hidden, int64_t patch, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c);
  torch::nn::Linear linear{nullptr};
  torch::nn::Sequential adaLN_modulation{nullptr};
};
TORCH_MODULE(FinalLayer);

// (B, N, p·p·c) -> (B, c, H·p, W·p), einsum nhwpqc->nchpwq.
torch::Tensor unpatchify(const torch::Tensor& x, int64_t patch, int64_t channels);

}  // namespace sdit

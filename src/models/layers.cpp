#include "models/layers.h"

#include <cmath>

namespace sdit {

namespace F = torch::nn::functional;

torch::Tensor modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

torch::Tensor layer_norm(const torch::Tensor& x) {
  return torch::layer_norm(x, {x.size(-1)}, {}, {}, 1e-6);
}

torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t heads) {
  const int64_t B = q.size(0), Nq = q.size(1), Nk = k.size(1), C = q.size(2);
  const int64_t hd = C / heads;
  auto split = [&](const torch::Tensor& t, int64_t n) { return t.reshape({B, n, heads, hd}).permute({0, 2, 1, 3}); };
  auto qh = split(q, Nq) * std::pow(static_cast<double>(hd), -0.5);
  auto attn = torch::matmul(qh, split(k, Nk).transpose(-2, -1)).softmax(-1);
  return torch::matmul(attn, split(v, Nk)).transpose(1, 2).reshape({B, Nq, C});
}

torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  // Computed on the CPU in float32 first: CPU and CUDA exp may differ by an ulp (DIT_REFERENCE §1.3).
  auto freqs = torch::exp(-std::log(max_period) * torch::arange(0, half, torch::kFloat32) / half).to(t.device());
  auto args = t.unsqueeze(1).to(torch::kFloat32) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, -1);
  if (dim % 2) emb = torch::cat({emb, torch::zeros_like(emb.narrow(1, 0, 1))}, -1);
  return emb;
}

TimestepEmbedderImpl::TimestepEmbedderImpl(int64_t hidden, int64_t freq_dim) : freq_dim_(freq_dim) {
  mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(freq_dim, hidden), torch::nn::SiLU(),
                                                     torch::nn::Linear(hidden, hidden)));
}

torch::Tensor TimestepEmbedderImpl::forward(const torch::Tensor& t) {
  const auto dtype = mlp[0]->as<torch::nn::LinearImpl>()->weight.scalar_type();
  return mlp->forward(timestep_embedding(t, freq_dim_).to(dtype));
}

LabelEmbedderImpl::LabelEmbedderImpl(int64_t num_classes_, int64_t hidden, double dropout_prob_)
    : num_classes(num_classes_), dropout_prob(dropout_prob_) {
  embedding_table = register_module(
      "embedding_table", torch::nn::Embedding(num_classes + (dropout_prob > 0 ? 1 : 0), hidden));
}

torch::Tensor LabelEmbedderImpl::forward(const torch::Tensor& labels) {
  auto l = labels;
  if (is_training() && dropout_prob > 0) {
    auto drop = torch::rand({labels.size(0)}, labels.options().dtype(torch::kFloat32)) < dropout_prob;
    l = torch::where(drop, torch::full_like(labels, num_classes), labels);
  }
  return embedding_table->forward(l);
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in_channels, int64_t hidden, int64_t patch) {
  proj = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, hidden, patch).stride(patch)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  return proj->forward(x).flatten(2).transpose(1, 2);
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return fc2->forward(F::gelu(fc1->forward(x), F::GELUFuncOptions().approximate("tanh")));
}

torch::nn::Sequential make_adaln(int64_t hidden, int64_t chunks) {
  return torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(hidden, chunks * hidden));
}

std::vector<torch::Tensor> adaln_chunks(torch::nn::Sequential& adaln, const torch::Tensor& c, int64_t chunks) {
  return adaln->forward(c).chunk(chunks, 1);
}

SelfAttentionImpl::SelfAttentionImpl(int64_t dim, int64_t heads_) : heads(heads_) {
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x) {
  auto parts = qkv->forward(x).chunk(3, -1);  // rows [q | k | v] of the fused weight
  return proj->forward(multi_head_attention(parts[0], parts[1], parts[2], heads));
}

CrossAttentionImpl::CrossAttentionImpl(int64_t dim, int64_t heads_) : heads(heads_) {
  q = register_module("q", torch::nn::Linear(dim, dim));
  kv = register_module("kv", torch::nn::Linear(dim, 2 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x_q, const torch::Tensor& x_kv) {
  auto k_v = kv->forward(x_kv).chunk(2, -1);  // K first, then V
  return proj->forward(multi_head_attention(q->forward(x_q), k_v[0], k_v[1], heads));
}

AdaLNBlockImpl::AdaLNBlockImpl(int64_t hidden, double mlp_ratio) {
  mlp = register_module("mlp", Mlp(hidden, static_cast<int64_t>(hidden * mlp_ratio)));
  adaLN_modulation = register_module("adaLN_modulation", make_adaln(hidden, 6));
}

torch::Tensor AdaLNBlockImpl::finish(const torch::Tensor& x, const torch::Tensor& attn_out,
                                     const std::vector<torch::Tensor>& m) {
  auto h = x + m[2].unsqueeze(1) * attn_out;
  return h + m[5].unsqueeze(1) * mlp->forward(modulate(layer_norm(h), m[3], m[4]));
}

FinalLayerImpl::FinalLayerImpl(int64_t hidden, int64_t patch, int64_t out_channels) {
  linear = register_module("linear", torch::nn::Linear(hidden, patch * patch * out_channels));
  adaLN_modulation = register_module("adaLN_modulation", make_adaln(hidden, 2));
}

torch::Tensor FinalLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& c) {
  auto m = adaln_chunks(adaLN_modulation, c, 2);  // shift first, then scale
  return linear->forward(modulate(layer_norm(x), m[0], m[1]));
}

torch::Tensor unpatchify(const torch::Tensor& x, int64_t patch, int64_t channels) {
  const int64_t B = x.size(0);
  const auto h = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(x.size(1)))));
  return x.reshape({B, h, h, patch, patch, channels})
      .permute({0, 5, 1, 3, 2, 4})
      .reshape({B, channels, h * patch, h * patch});
}

}  // namespace sdit

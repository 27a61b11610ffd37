#include "models/layers.h"

#include <cmath>
#include <limits>
#include <vector>

#include "util/error.h"

namespace sdit {

namespace F = torch::nn::functional;

torch::Tensor modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale) {
  return torch::addcmul(shift, x, 1 + scale);
}

torch::Tensor gated_residual(const torch::Tensor& x, const torch::Tensor& gate, const torch::Tensor& y) {
  return torch::addcmul(x, gate, y);
}

torch::Tensor linear(const torch::nn::LinearImpl& l, const torch::Tensor& x) {
  if (x.dim() < 3 || !x.is_contiguous() || !l.bias.defined()) return torch::nn::functional::linear(x, l.weight, l.bias);
  auto sizes = x.sizes().vec();
  const int64_t in = sizes.back();
  sizes.back() = l.weight.size(0);
  return torch::addmm(l.bias, x.view({-1, in}), l.weight.t()).view(sizes);
}

torch::Tensor layer_norm(const torch::Tensor& x) {
  return torch::layer_norm(x, {x.size(-1)}, {}, {}, 1e-6);
}

namespace {

// Inference: one sequence at a time on strided views of q, k, v (each token's heads are contiguous
// within its row, so a (heads, N, d) view needs no copy), the scale folded into the score GEMM,
// softmax in place, and the weighted sum written straight into the head-interleaved output. No
// q/k/v transposes, no second score buffer: the reference's form costs three extra passes.
torch::Tensor attention_inference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  int64_t heads, const torch::Tensor& key_mask) {
  const int64_t S = q.size(0), Nq = q.size(1), Nk = k.size(1), C = q.size(2), hd = C / heads;
  auto out = torch::empty({S, Nq, C}, q.options());
  // Zeroed once: baddbmm with beta 0 still scales its input on the CPU (0·NaN from fresh memory would
  // be NaN); afterwards the buffer only holds finite softmax values from the previous sequence.
  auto scores = torch::zeros({heads, Nq, Nk}, q.options());
  const double scale = std::pow(static_cast<double>(hd), -0.5);
  auto by_head = [&](const torch::Tensor& t, int64_t n) { return t.view({n, heads, hd}).transpose(0, 1); };
  for (int64_t s = 0; s < S; ++s) {
    if (key_mask.defined() && s > 0) scores.zero_();  // a fully masked row leaves NaN behind
    torch::baddbmm_out(scores, scores, by_head(q[s], Nq), by_head(k[s], Nk).transpose(1, 2), 0.0, scale);
    if (key_mask.defined())
      scores.masked_fill_(key_mask[s].eq(0).view({1, 1, Nk}), -std::numeric_limits<float>::infinity());
    at::_softmax_out(scores, scores, -1, false);
    auto o = by_head(out[s], Nq);
    torch::bmm_out(o, scores, by_head(v[s], Nk));
  }
  return out;
}

}  // namespace

torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t heads, const torch::Tensor& key_mask) {
  const int64_t S = q.size(0), Nq = q.size(1), Nk = k.size(1), C = q.size(2);
  const int64_t hd = C / heads;
  const bool grad = torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  // The strided views need each token's channels contiguous (true of linear outputs and their chunks).
  if (!grad && q.stride(2) == 1 && k.stride(2) == 1 && v.stride(2) == 1)
    return attention_inference(q, k, v, heads, key_mask);
  auto split = [&](const torch::Tensor& t, int64_t n) { return t.reshape({S, n, heads, hd}).permute({0, 2, 1, 3}); };
  auto qh = split(q, Nq) * std::pow(static_cast<double>(hd), -0.5);
  auto scores = torch::matmul(qh, split(k, Nk).transpose(-2, -1));
  if (key_mask.defined())
    scores = scores.masked_fill(key_mask.eq(0).view({S, 1, 1, Nk}), -std::numeric_limits<float>::infinity());
  auto attn = scores.softmax(-1);
  return torch::matmul(attn, split(v, Nk)).transpose(1, 2).reshape({S, Nq, C});
}

torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  // Computed on the CPU in float32 first: CPU and CUDA exp may differ by an ulp (docs/method.md §1).
  auto freqs = torch::exp(-std::log(max_period) * torch::arange(0, half, torch::kFloat32) / half).to(t.device());
  auto args = t.unsqueeze(1).to(torch::kFloat32) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, -1);
  if (dim % 2) emb = torch::cat({emb, torch::zeros_like(emb.narrow(1, 0, 1))}, -1);
  return emb;
}

namespace {

// numpy: arange(n, float32) / float32(n / base), then float64 / scale.
std::vector<double> axis_positions(int64_t n, double base, double scale) {
  const float step = static_cast<float>(static_cast<double>(n) / (base > 0 ? base : static_cast<double>(n)));
  std::vector<double> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<double>(static_cast<float>(i) / step) / scale;
  return pos;
}

std::vector<double> omegas(int64_t count) {
  std::vector<double> omega(static_cast<size_t>(count));
  for (int64_t m = 0; m < count; ++m)
    omega[m] = 1.0 / std::pow(10000.0, static_cast<double>(m) / static_cast<double>(count));
  return omega;
}

}  // namespace

torch::Tensor sincos_pos_embed_2d(int64_t hidden, int64_t h, int64_t w, double base_h, double base_w, double scale) {
  if (hidden <= 0 || hidden % 4 != 0) fail("sin-cos position embedding needs a hidden size divisible by 4, got ", hidden);
  if (h <= 0 || w <= 0) fail("sin-cos position embedding needs a positive grid, got ", h, "x", w);
  const int64_t d4 = hidden / 4;
  const auto omega = omegas(d4);
  const auto rows = axis_positions(h, base_h, scale), cols = axis_positions(w, base_w, scale);
  torch::Tensor pe = torch::empty({1, h * w, hidden}, torch::kFloat);
  float* out = pe.data_ptr<float>();
  for (int64_t i = 0; i < h; ++i) {
    for (int64_t j = 0; j < w; ++j) {
      float* row = out + (i * w + j) * hidden;
      // The first half encodes the column: numpy's meshgrid(w, h) puts w first.
      for (int64_t m = 0; m < d4; ++m) {
        const double aj = cols[j] * omega[m], ai = rows[i] * omega[m];
        row[m] = static_cast<float>(std::sin(aj));
        row[d4 + m] = static_cast<float>(std::cos(aj));
        row[2 * d4 + m] = static_cast<float>(std::sin(ai));
        row[3 * d4 + m] = static_cast<float>(std::cos(ai));
      }
    }
  }
  return pe;
}

torch::Tensor sincos_pos_embed_1d(int64_t hidden, int64_t n) {
  if (hidden <= 0 || hidden % 2 != 0) fail("1-D sin-cos embedding needs an even hidden size, got ", hidden);
  const int64_t half = hidden / 2;
  const auto omega = omegas(half);
  torch::Tensor pe = torch::empty({1, n, hidden}, torch::kFloat);
  float* out = pe.data_ptr<float>();
  for (int64_t f = 0; f < n; ++f)
    for (int64_t m = 0; m < half; ++m) {
      const double a = static_cast<double>(f) * omega[m];
      out[f * hidden + m] = static_cast<float>(std::sin(a));
      out[f * hidden + half + m] = static_cast<float>(std::cos(a));
    }
  return pe;
}

torch::Tensor unpatchify(const torch::Tensor& x, int64_t patch, int64_t channels, int64_t h, int64_t w) {
  const int64_t B = x.size(0);
  if (x.size(1) != h * w) fail("unpatchify: ", x.size(1), " tokens do not form a ", h, "x", w, " grid");
  return x.reshape({B, h, w, patch, patch, channels})
      .permute({0, 5, 1, 3, 2, 4})
      .reshape({B, channels, h * patch, w * patch});
}

namespace {

// (B, g.tokens(), C) as images: (B·F, C, h, w) for per-frame ops, or (B, C, F, h, w) for joint ones.
torch::Tensor as_frames(const torch::Tensor& x, const Grid& g) {
  return x.reshape({x.size(0) * g.frames, g.h, g.w, x.size(2)}).permute({0, 3, 1, 2});
}
torch::Tensor from_frames(const torch::Tensor& img, int64_t B, const Grid& g) {
  return img.permute({0, 2, 3, 1}).reshape({B, g.tokens(), img.size(1)});
}
torch::Tensor as_volume(const torch::Tensor& x, const Grid& g) {
  return x.reshape({x.size(0), g.frames, g.h, g.w, x.size(2)}).permute({0, 4, 1, 2, 3});
}
torch::Tensor from_volume(const torch::Tensor& vol, const Grid& g) {
  return vol.permute({0, 2, 3, 4, 1}).reshape({vol.size(0), g.tokens(), vol.size(1)});
}

void check_tokens(const torch::Tensor& x, const Grid& g, const char* what) {
  if (x.dim() != 3 || x.size(1) != g.tokens())
    fail(what, ": tokens of shape ", shape_str(x.sizes().vec()), " do not hold a ", g.str(), " grid");
}

}  // namespace

torch::Tensor pool_tokens(const torch::Tensor& tokens, const Grid& from, const Grid& to) {
  if (from == to) return tokens;
  check_tokens(tokens, from, "pool_tokens");
  if (from.frames == to.frames)
    return from_frames(F::adaptive_avg_pool2d(as_frames(tokens, from), F::AdaptiveAvgPool2dFuncOptions({to.h, to.w})),
                       tokens.size(0), to);
  return from_volume(
      F::adaptive_avg_pool3d(as_volume(tokens, from), F::AdaptiveAvgPool3dFuncOptions({to.frames, to.h, to.w})), to);
}

torch::Tensor upsample_tokens(const torch::Tensor& tokens, const Grid& from, const Grid& to) {
  if (from == to) return tokens;
  check_tokens(tokens, from, "upsample_tokens");
  if (from.frames == to.frames) {
    auto up = F::interpolate(as_frames(tokens, from), F::InterpolateFuncOptions()
                                                         .size(std::vector<int64_t>{to.h, to.w})
                                                         .mode(torch::kNearest));
    return from_frames(up, tokens.size(0), to);
  }
  auto up = F::interpolate(as_volume(tokens, from), F::InterpolateFuncOptions()
                                                       .size(std::vector<int64_t>{to.frames, to.h, to.w})
                                                       .mode(torch::kNearest));
  return from_volume(up, to);
}

TimestepEmbedderImpl::TimestepEmbedderImpl(int64_t hidden, int64_t freq_dim) : freq_dim_(freq_dim) {
  first_ = torch::nn::Linear(freq_dim, hidden);
  mlp = register_module("mlp", torch::nn::Sequential(first_, torch::nn::SiLU(), torch::nn::Linear(hidden, hidden)));
}

torch::Tensor TimestepEmbedderImpl::forward(const torch::Tensor& t) {
  return mlp->forward(timestep_embedding(t, freq_dim_).to(first_->weight.scalar_type()));
}

LabelEmbedderImpl::LabelEmbedderImpl(int64_t num_classes_, int64_t hidden, double dropout_prob_)
    : num_classes(num_classes_), dropout_prob(dropout_prob_) {
  embedding_table = register_module(
      "embedding_table", torch::nn::Embedding(num_classes + (dropout_prob > 0 ? 1 : 0), hidden));
}

torch::Tensor LabelEmbedderImpl::forward(const torch::Tensor& labels) {
  auto l = labels;
  if (is_training() && dropout_prob > 0 && !external_dropout) {
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

MlpImpl::MlpImpl(int64_t dim, int64_t hidden, int64_t out) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, out > 0 ? out : dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = linear(fc1, x);
  // In place when no gradient is taken: the 4C-wide activation is the largest tensor of a block.
  if (!torch::GradMode::is_enabled() || !h.requires_grad()) at::gelu_(h, "tanh");
  else h = F::gelu(h, F::GELUFuncOptions().approximate("tanh"));
  return linear(fc2, h);
}

torch::nn::Sequential make_adaln(int64_t hidden, int64_t chunks) {
  return torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(hidden, chunks * hidden));
}

SelfAttentionImpl::SelfAttentionImpl(int64_t dim, int64_t heads_) : heads(heads_) {
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x) {
  auto parts = linear(qkv, x).chunk(3, -1);  // rows [q | k | v] of the fused weight
  return linear(proj, multi_head_attention(parts[0], parts[1], parts[2], heads));
}

CrossAttentionImpl::CrossAttentionImpl(int64_t dim, int64_t heads_, const std::string& q_name, const std::string& kv_name)
    : heads(heads_) {
  q = register_module(q_name, torch::nn::Linear(dim, dim));
  kv = register_module(kv_name, torch::nn::Linear(dim, 2 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x_q, const torch::Tensor& x_kv,
                                          const torch::Tensor& key_mask) {
  auto k_v = linear(kv, x_kv).chunk(2, -1);  // K first, then V
  return linear(proj, multi_head_attention(linear(q, x_q), k_v[0], k_v[1], heads, key_mask));
}

PoolAttentionImpl::PoolAttentionImpl(int64_t dim) {
  v = register_module("v", torch::nn::Linear(dim, dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor PoolAttentionImpl::forward(const torch::Tensor& x) {
  return linear(proj, linear(v, x.mean(1, /*keepdim=*/true)));
}

FinalLayerImpl::FinalLayerImpl(int64_t hidden, int64_t patch, int64_t out_channels) {
  linear = register_module("linear", torch::nn::Linear(hidden, patch * patch * out_channels));
  adaLN_modulation = register_module("adaLN_modulation", make_adaln(hidden, 2));
}

torch::Tensor FinalLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& c) {
  auto m = adaLN_modulation->forward(c).chunk(2, 1);  // shift first, then scale
  return sdit::linear(linear, modulate(layer_norm(x), m[0].unsqueeze(1), m[1].unsqueeze(1)));
}

}  // namespace sdit

// Every op and block type against a plain reference formula, in the manner of llama.cpp's
// test-backend-ops: one table of cases, each with its inputs, our op, a float64 reference written
// independently (loops where the semantics matter: window rules, index maps, attention), and a
// tolerance; every case runs in float64 and float32 on every device present. Then float64
// finite-difference gradients for every block type. Shapes are deliberately non-square, with B > 1
// and several frames, where the square single-image goldens cannot see a mistake.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "models/block.h"
#include "models/layers.h"
#include "models/pixart.h"
#include "testing.h"
#include "util/compat.h"

using namespace sdit;

namespace {

using Tensors = std::vector<torch::Tensor>;
const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

// ---- plain references (float64, written from the formulas, not from our code) ----------------

torch::Tensor ref_layer_norm(const torch::Tensor& x) {
  auto mean = x.mean(-1, true);
  auto var = (x - mean).pow(2).mean(-1, true);
  return (x - mean) / (var + 1e-6).sqrt();
}

torch::Tensor ref_gelu_tanh(const torch::Tensor& x) {
  return 0.5 * x * (1 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))));
}

// softmax(q·kᵀ/√d)·v per sequence and head, masked keys left out of the softmax.
torch::Tensor ref_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t heads,
                            const torch::Tensor& mask = {}) {
  const int64_t S = q.size(0), Nq = q.size(1), Nk = k.size(1), C = q.size(2), d = C / heads;
  auto out = torch::zeros({S, Nq, C}, kF64);
  auto qa = q.accessor<double, 3>(), ka = k.accessor<double, 3>(), va = v.accessor<double, 3>();
  auto oa = out.accessor<double, 3>();
  std::vector<double> p(Nk);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < Nq; ++i) {
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < Nk; ++j) {
          if (mask.defined() && mask[s][j].item<int64_t>() == 0) {
            p[j] = -1e300;
            continue;
          }
          double dot = 0;
          for (int64_t e = 0; e < d; ++e) dot += qa[s][i][h * d + e] * ka[s][j][h * d + e];
          p[j] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j < Nk; ++j) sum += p[j] = p[j] <= -1e299 ? 0.0 : std::exp(p[j] - mx);
        for (int64_t j = 0; j < Nk; ++j)
          for (int64_t e = 0; e < d; ++e) oa[s][i][h * d + e] += p[j] / sum * va[s][j][h * d + e];
      }
  return out;
}

// PyTorch's adaptive pooling windows: [⌊i·n/m⌋, ⌈(i+1)·n/m⌉).
std::pair<int64_t, int64_t> window(int64_t i, int64_t n, int64_t m) { return {i * n / m, ((i + 1) * n + m - 1) / m}; }

// Builds (B, to.tokens(), C) from x (B, from.tokens(), C): output token (f, i, j) of sample b is
// fn(x[b], f, i, j), the input token index being (f·h + i)·w + j on `from`.
torch::Tensor ref_map_tokens(const torch::Tensor& x, const Grid& from, const Grid& to,
                             const std::function<torch::Tensor(const torch::Tensor&, int64_t, int64_t, int64_t)>& fn) {
  auto out = torch::zeros({x.size(0), to.tokens(), x.size(2)}, kF64);
  for (int64_t b = 0; b < x.size(0); ++b)
    for (int64_t f = 0; f < to.frames; ++f)
      for (int64_t i = 0; i < to.h; ++i)
        for (int64_t j = 0; j < to.w; ++j) out[b][(f * to.h + i) * to.w + j] = fn(x[b], f, i, j);
  return out;
}

torch::Tensor ref_pool(const torch::Tensor& x, const Grid& from, const Grid& to) {
  return ref_map_tokens(x, from, to, [&](const torch::Tensor& xb, int64_t f, int64_t i, int64_t j) {
    auto [f0, f1] = window(f, from.frames, to.frames);
    auto [i0, i1] = window(i, from.h, to.h);
    auto [j0, j1] = window(j, from.w, to.w);
    auto acc = torch::zeros({x.size(2)}, kF64);
    for (int64_t ff = f0; ff < f1; ++ff)
      for (int64_t ii = i0; ii < i1; ++ii)
        for (int64_t jj = j0; jj < j1; ++jj) acc += xb[(ff * from.h + ii) * from.w + jj];
    return acc / static_cast<double>((f1 - f0) * (i1 - i0) * (j1 - j0));
  });
}

// Legacy nearest: src = ⌊dst·in/out⌋ on each axis.
torch::Tensor ref_upsample(const torch::Tensor& x, const Grid& from, const Grid& to) {
  return ref_map_tokens(x, from, to, [&](const torch::Tensor& xb, int64_t f, int64_t i, int64_t j) {
    return xb[((f * from.frames / to.frames) * from.h + i * from.h / to.h) * from.w + j * from.w / to.w];
  });
}

// (B, h·w, p·p·c) -> (B, c, h·p, w·p): token (i, j), channel order (p_row, p_col, c).
torch::Tensor ref_unpatchify(const torch::Tensor& x, int64_t p, int64_t c, int64_t h, int64_t w) {
  const int64_t B = x.size(0);
  auto out = torch::zeros({B, c, h * p, w * p}, kF64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        for (int64_t pr = 0; pr < p; ++pr)
          for (int64_t pc = 0; pc < p; ++pc)
            for (int64_t ch = 0; ch < c; ++ch) out[b][ch][i * p + pr][j * p + pc] = x[b][i * w + j][(pr * p + pc) * c + ch];
  return out;
}

// The MAE/PixArt table: [sin(u·ω), cos(u·ω), sin(v·ω), cos(v·ω)], u the column position, v the row's.
torch::Tensor ref_sincos_2d(int64_t C, int64_t h, int64_t w, double base_h, double base_w, double scale) {
  auto out = torch::zeros({1, h * w, C}, kF64);
  const int64_t q = C / 4;
  auto pos = [&](int64_t i, int64_t n, double base) {
    return static_cast<double>(static_cast<float>(i) / static_cast<float>(n / base)) / scale;
  };
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j)
      for (int64_t m = 0; m < q; ++m) {
        const double om = 1.0 / std::pow(10000.0, static_cast<double>(m) / q);
        const double u = pos(j, w, base_w) * om, v = pos(i, h, base_h) * om;
        auto row = out[0][i * w + j];
        row[m] = std::sin(u), row[q + m] = std::cos(u), row[2 * q + m] = std::sin(v), row[3 * q + m] = std::cos(v);
      }
  return out;
}

// Sequences of a block: spatial = the h·w tokens of each frame, temporal = the frames at each location.
std::vector<std::vector<int64_t>> ref_sequences(const Grid& g, BlockAxis axis) {
  std::vector<std::vector<int64_t>> seqs;
  if (axis == BlockAxis::Spatial) {
    for (int64_t f = 0; f < g.frames; ++f) {
      seqs.emplace_back();
      for (int64_t n = 0; n < g.per_frame(); ++n) seqs.back().push_back(f * g.per_frame() + n);
    }
  } else {
    for (int64_t n = 0; n < g.per_frame(); ++n) {
      seqs.emplace_back();
      for (int64_t f = 0; f < g.frames; ++f) seqs.back().push_back(f * g.per_frame() + n);
    }
  }
  return seqs;
}

// Applies fn to each sequence of every sample: fn(q tokens, kv tokens) -> q-shaped output.
torch::Tensor ref_per_sequence(const torch::Tensor& q, const torch::Tensor& kv, const Grid& qg, const Grid& kg,
                               BlockAxis axis, const std::function<torch::Tensor(torch::Tensor, torch::Tensor)>& fn) {
  torch::Tensor out;
  const auto qs = ref_sequences(qg, axis), ks = ref_sequences(kg, axis);
  for (int64_t b = 0; b < q.size(0); ++b)
    for (size_t s = 0; s < qs.size(); ++s) {
      auto qi = torch::tensor(qs[s]), ki = torch::tensor(ks[s]);
      auto r = fn(q[b].index_select(0, qi).unsqueeze(0), kv[b].index_select(0, ki).unsqueeze(0))[0];
      if (!out.defined()) out = torch::zeros({q.size(0), qg.tokens(), r.size(-1)}, kF64);
      out[b].index_copy_(0, qi, r);
    }
  return out;
}

// Sparse-gen and recovery attention: frame by frame while the frames are kept, across the whole
// sample when the sparse grid pools the frames too (joint spatio-temporal pooling).
torch::Tensor ref_cross(const torch::Tensor& q, const torch::Tensor& kv, const Grid& qg, const Grid& kg,
                        const std::function<torch::Tensor(torch::Tensor, torch::Tensor)>& fn) {
  if (qg.frames == kg.frames) return ref_per_sequence(q, kv, qg, kg, BlockAxis::Spatial, fn);
  std::vector<torch::Tensor> out;
  for (int64_t b = 0; b < q.size(0); ++b) out.push_back(fn(q[b].unsqueeze(0), kv[b].unsqueeze(0))[0]);
  return torch::stack(out);
}

torch::Tensor lin(const torch::nn::LinearImpl& l, const torch::Tensor& x) { return torch::matmul(x, l.weight.t()) + l.bias; }
torch::Tensor lin(const torch::nn::Linear& l, const torch::Tensor& x) { return lin(*l, x); }

// The six modulation vectors (B, 1, C): DiT's per-block adaLN-Zero Linear on SiLU(c), or PixArt's
// adaLN-single table plus the shared t0 = ctx.c (B, 6C).
std::vector<torch::Tensor> ref_modulation(TransformerBlockImpl& blk, const BlockContext& ctx) {
  std::vector<torch::Tensor> m;
  if (auto* px = dynamic_cast<PixArtBlockImpl*>(&blk)) {
    auto all = px->scale_shift_table.unsqueeze(0) + ctx.c.reshape({ctx.c.size(0), 6, -1});
    for (int k = 0; k < 6; ++k) m.push_back(all.select(1, k).unsqueeze(1));
    return m;
  }
  auto& ada = dynamic_cast<AdaLNZeroBlockImpl&>(blk);
  auto out = lin(*ada.adaLN_modulation[1]->as<torch::nn::LinearImpl>(), torch::silu(ctx.c)).chunk(6, 1);
  for (auto& t : out) m.push_back(t.unsqueeze(1));
  return m;
}

// PixArt's text cross-attention: every token of sample b over the valid caption tokens of sample b.
torch::Tensor ref_text_attention(PixArtBlockImpl& blk, const torch::Tensor& h, const BlockContext& ctx) {
  const auto& ca = *blk.text_attn;
  auto kv = lin(ca.kv, ctx.context).split(h.size(2), -1);
  return lin(ca.proj, ref_attention(lin(ca.q, h), kv[0], kv[1], ca.heads, ctx.context_mask));
}

// The block equations of docs/method.md §1 and §3 with the reference's order of operations
// (project every token, then average; upsample, then W1), plus PixArt's cross-attention.
torch::Tensor ref_block(TransformerBlockImpl& blk, const Tensors& in, const BlockContext& ctx, const Grid& grid) {
  const auto& o = blk.options();
  auto ada = ref_modulation(blk, ctx);
  auto mod = [&](const torch::Tensor& x, int k) { return ref_layer_norm(x) * (1 + ada[k + 1]) + ada[k]; };
  auto mlp = [&](const torch::Tensor& x) { return lin(blk.mlp->fc2, ref_gelu_tanh(lin(blk.mlp->fc1, x))); };
  const int64_t C = o.hidden;
  torch::Tensor x = in[0], mixed;
  switch (o.mixer) {
    case TokenMixer::Attention: {
      auto qkv = lin(blk.self_attn->qkv, mod(x, 0));
      mixed = ref_per_sequence(qkv, qkv, grid, grid, o.axis, [&](torch::Tensor a, torch::Tensor b) {
        auto p = a.split(C, -1), r = b.split(C, -1);
        return ref_attention(p[0], r[1], r[2], o.heads);
      });
      mixed = lin(blk.self_attn->proj, mixed);
      break;
    }
    case TokenMixer::Pooling: {
      auto v = lin(blk.pool_attn->v, mod(x, 0));
      mixed = ref_per_sequence(v, v, grid, grid, o.axis, [](torch::Tensor a, torch::Tensor) {
        return a.mean(1, true).expand_as(a);
      });
      mixed = lin(blk.pool_attn->proj, mixed);
      break;
    }
    case TokenMixer::SparseGen: {
      const auto& dense = in[1];
      auto q = lin(blk.cross_attn->q, mod(x, 0)), kv = lin(blk.cross_attn->kv, mod(dense, 0));
      mixed = ref_cross(q, kv, ctx.sparse, ctx.dense, [&](torch::Tensor a, torch::Tensor b) {
        auto r = b.split(C, -1);
        return ref_attention(a, r[0], r[1], o.heads);
      });
      mixed = lin(blk.cross_attn->proj, mixed);
      break;
    }
    case TokenMixer::Recovery: {
      const auto& dense = in[1];
      auto merged = lin(blk.merged_layer1, ref_upsample(x, ctx.sparse, ctx.dense)) + lin(blk.merged_layer2, dense);
      auto q = lin(blk.cross_attn->q, mod(merged, 0)), kv = lin(blk.cross_attn->kv, mod(x, 0));
      mixed = ref_cross(q, kv, ctx.dense, ctx.sparse, [&](torch::Tensor a, torch::Tensor b) {
        auto r = b.split(C, -1);
        return ref_attention(a, r[0], r[1], o.heads);
      });
      mixed = lin(blk.cross_attn->proj, mixed);
      x = merged;
      break;
    }
  }
  auto h = x + ada[2] * mixed;
  if (auto* px = dynamic_cast<PixArtBlockImpl*>(&blk)) h = h + ref_text_attention(*px, h, ctx);
  return h + ada[5] * mlp(mod(h, 3));
}

std::shared_ptr<TransformerBlockImpl> make_block(TokenMixer mixer, BlockAxis axis, bool pixart = false,
                                                 int64_t C = 16, int64_t heads = 2) {
  TransformerBlockImpl::Options o;
  o.hidden = C;
  o.heads = heads;
  o.mixer = mixer;
  o.axis = axis;
  std::shared_ptr<TransformerBlockImpl> b;
  if (pixart) b = std::make_shared<PixArtBlockImpl>(o);
  else b = std::make_shared<AdaLNZeroBlockImpl>(o);
  torch::NoGradGuard ng;
  torch::manual_seed(11);  // the same weights every time a case builds its block
  for (auto& p : b->parameters()) p.normal_(0.0, 0.3);  // no zero-init: every term must matter
  b->to(torch::kDouble);
  return b;
}

// Runs our block on its inputs (x [, dense]) for the given grids.
torch::Tensor run_block(TransformerBlockImpl& b, const Tensors& in, const BlockContext& ctx, const Grid& grid) {
  switch (b.options().mixer) {
    case TokenMixer::SparseGen: return b.forward_gen(in[0], in[1], ctx);
    case TokenMixer::Recovery: return b.forward_recovery(in[0], in[1], ctx);
    default: return b.forward(in[0], grid, ctx);
  }
}

// ---- the table -------------------------------------------------------------------------------

struct OpCase {
  std::string name;
  std::function<Tensors()> inputs;                       // float64, CPU
  std::function<torch::Tensor(const Tensors&)> op;       // ours, any dtype/device
  std::function<torch::Tensor(const Tensors&)> ref;      // float64 reference
  double tol32 = 2e-6;                                    // relative L2 in float32
  bool float32_result = false;  // the op returns float32 whatever its inputs (the sin-cos tables)
};

struct BlockCase {
  std::string name;
  TokenMixer mixer;
  BlockAxis axis;
  Grid dense, sparse;  // the block runs on `dense` (Attention/Pooling) or between the two
  bool pixart = false;  // PixArt's block: adaLN-single table + t0, masked text cross-attention
};

constexpr int64_t kCaptionTokens = 5;

const std::vector<BlockCase>& block_cases() {
  static const std::vector<BlockCase> cases = {
      {"attention spatial 2 frames 3x5", TokenMixer::Attention, BlockAxis::Spatial, {2, 3, 5}, {2, 3, 5}},
      {"attention temporal 3 frames 2x3", TokenMixer::Attention, BlockAxis::Temporal, {3, 2, 3}, {3, 2, 3}},
      {"poolingformer spatial 4x6", TokenMixer::Pooling, BlockAxis::Spatial, {1, 4, 6}, {1, 4, 6}},
      {"poolingformer spatial 2 frames 3x2", TokenMixer::Pooling, BlockAxis::Spatial, {2, 3, 2}, {2, 3, 2}},
      {"poolingformer temporal 3 frames 2x2", TokenMixer::Pooling, BlockAxis::Temporal, {3, 2, 2}, {3, 2, 2}},
      {"sparse-gen 6x9 -> 2x3", TokenMixer::SparseGen, BlockAxis::Spatial, {1, 6, 9}, {1, 2, 3}},
      {"sparse-gen 2 frames 5x4 -> 3x2", TokenMixer::SparseGen, BlockAxis::Spatial, {2, 5, 4}, {2, 3, 2}},
      {"recovery 2x3 -> 6x9", TokenMixer::Recovery, BlockAxis::Spatial, {1, 6, 9}, {1, 2, 3}},
      {"recovery 2 frames 3x2 -> 5x4", TokenMixer::Recovery, BlockAxis::Spatial, {2, 5, 4}, {2, 3, 2}},
      // Latte: temporal blocks over the frames at each location of a pooled (sparse) grid, and the
      // joint spatio-temporal pooling of SparseDiT-Latte (frames 4 -> 2).
      {"attention temporal at 3x2 sparse locations, 4 frames", TokenMixer::Attention, BlockAxis::Temporal, {4, 3, 2},
       {4, 3, 2}},
      {"sparse-gen joint 4 frames 4x6 -> 2 frames 2x3", TokenMixer::SparseGen, BlockAxis::Spatial, {4, 4, 6}, {2, 2, 3}},
      {"recovery joint 2 frames 2x3 -> 4 frames 4x6", TokenMixer::Recovery, BlockAxis::Spatial, {4, 4, 6}, {2, 2, 3}},
      {"pixart attention 3x5", TokenMixer::Attention, BlockAxis::Spatial, {1, 3, 5}, {1, 3, 5}, true},
      {"pixart poolingformer 4x6", TokenMixer::Pooling, BlockAxis::Spatial, {1, 4, 6}, {1, 4, 6}, true},
      {"pixart sparse-gen 6x9 -> 2x3", TokenMixer::SparseGen, BlockAxis::Spatial, {1, 6, 9}, {1, 2, 3}, true},
      {"pixart recovery 2x3 -> 6x9", TokenMixer::Recovery, BlockAxis::Spatial, {1, 6, 9}, {1, 2, 3}, true},
  };
  return cases;
}

Tensors block_inputs(const BlockCase& c, int64_t B, int64_t C) {
  torch::manual_seed(7);
  Tensors in;
  const bool two = c.mixer == TokenMixer::SparseGen || c.mixer == TokenMixer::Recovery;
  const Grid first = c.mixer == TokenMixer::Recovery ? c.sparse : c.mixer == TokenMixer::SparseGen ? c.sparse : c.dense;
  in.push_back(torch::randn({B, first.tokens(), C}, kF64));
  if (two) in.push_back(torch::randn({B, c.dense.tokens(), C}, kF64));
  if (c.pixart) in.push_back(torch::randn({B, kCaptionTokens, C}, kF64));  // projected caption tokens
  in.push_back(torch::randn({B, c.pixart ? 6 * C : C}, kF64));  // c (DiT) or t0 (PixArt)
  return in;
}

// Caption masks with holes and different lengths per sample (not only prefixes).
torch::Tensor caption_mask(int64_t B) {
  auto m = torch::ones({B, kCaptionTokens}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) m[b][(2 * b + 1) % kCaptionTokens] = 0;
  if (B > 1) m[1].narrow(0, 3, kCaptionTokens - 3).zero_();
  return m;
}

// The block's own inputs (tokens [, dense]) of a case's input list, and its context.
Tensors block_tokens(const BlockCase& c, const Tensors& in) { return Tensors(in.begin(), in.end() - (c.pixart ? 2 : 1)); }

BlockContext block_ctx(const BlockCase& c, const Tensors& in) {
  BlockContext ctx;
  ctx.c = in.back();
  if (c.pixart) {
    ctx.context = in[in.size() - 2];
    ctx.context_mask = caption_mask(ctx.c.size(0)).to(ctx.c.device());
  }
  ctx.dense = c.dense;
  ctx.sparse = c.sparse;
  return ctx;
}

// One SDTM of SparseDiT-Latte in the order the trunk runs it, 2 samples of 3 non-square frames:
// pool each frame 5x4 -> 3x2, sparse-gen (spatial), a temporal block over the frames at each sparse
// location, recovery (spatial). The reference chains the plain formulas.
OpCase sdtm_chain_case() {
  const Grid dense{3, 5, 4}, sparse{3, 3, 2};
  auto blocks = [](torch::Dtype dtype, torch::Device device) {
    std::vector<std::shared_ptr<TransformerBlockImpl>> b = {make_block(TokenMixer::SparseGen, BlockAxis::Spatial),
                                                         make_block(TokenMixer::Attention, BlockAxis::Temporal),
                                                         make_block(TokenMixer::Recovery, BlockAxis::Spatial)};
    for (auto& x : b) x->to(device, dtype);
    return b;
  };
  auto context = [=](const torch::Tensor& c) {
    BlockContext ctx;
    ctx.c = c;
    ctx.dense = dense;
    ctx.sparse = sparse;
    return ctx;
  };
  return {"SDTM chain: 2 x 3 frames 5x4, gen -> temporal at 3x2 sparse locations -> recovery",
          [=] { return Tensors{torch::randn({2, dense.tokens(), 16}, kF64), torch::randn({2, 16}, kF64)}; },
          [=](const Tensors& t) {
            auto b = blocks(t[0].scalar_type(), t[0].device());
            const auto ctx = context(t[1]);
            auto s = b[0]->forward_gen(pool_tokens(t[0], dense, sparse), t[0], ctx);
            s = b[1]->forward(s, sparse, ctx);
            return b[2]->forward_recovery(s, t[0], ctx);
          },
          [=](const Tensors& t) {
            auto b = blocks(torch::kDouble, torch::kCPU);
            const auto ctx = context(t[1]);
            auto s = ref_block(*b[0], {ref_pool(t[0], dense, sparse), t[0]}, ctx, dense);
            s = ref_block(*b[1], {s}, ctx, sparse);
            return ref_block(*b[2], {s, t[0]}, ctx, dense);
          },
          1e-5};
}

// PixArt's masked cross-attention module, and PixArt-MS's size embedding: each value's [cos | sin]
// sinusoid through Linear -> SiLU -> Linear, a row's values concatenated, 2 rows repeated to 4.
void add_pixart_op_cases(std::vector<OpCase>& cases) {
  auto attn = [](bool ref) {
    return [ref](const Tensors& t) {
      torch::manual_seed(13);
      CrossAttention ca(12, 3, "q_linear", "kv_linear");
      ca->to(ref ? torch::kCPU : t[0].device(), ref ? torch::kDouble : t[0].scalar_type());
      if (!ref) return ca->forward(t[0], t[1], caption_mask(3).to(t[0].device()));
      auto kv = lin(ca->kv, t[1]).split(12, -1);
      return lin(ca->proj, ref_attention(lin(ca->q, t[0]), kv[0], kv[1], 3, caption_mask(3)));
    };
  };
  cases.push_back({"pixart masked cross-attention (non-prefix masks)",
                   [] { return Tensors{torch::randn({3, 7, 12}, kF64), torch::randn({3, kCaptionTokens, 12}, kF64)}; },
                   attn(false), attn(true)});
  auto sizes = [](bool ref) {
    return [ref](const Tensors& t) {
      torch::manual_seed(17);
      TimestepEmbedder e(6);
      e->to(ref ? torch::kCPU : t[0].device(), ref ? torch::kDouble : t[0].scalar_type());
      if (!ref) return embed_sizes(*e, t[0], 4);
      auto out = torch::zeros({4, 12}, kF64);
      for (int64_t b = 0; b < 4; ++b)
        for (int64_t d = 0; d < 2; ++d) {
          const auto w = torch::exp(-std::log(10000.0) * torch::arange(128, kF64) / 128.0) * t[0][b % 2][d];
          out[b].narrow(0, 6 * d, 6).copy_(e->mlp->forward(torch::cat({torch::cos(w), torch::sin(w)})));
        }
      return out;
    };
  };
  // The reference, too, forms the sinusoid in float32 (t.float()): ~1e-5 of arguments near 160.
  cases.push_back({"pixart-ms micro-condition embedding (img_hw, aspect ratio)",
                   [] { return Tensors{torch::tensor({96., 160., 64., 128.}, kF64).view({2, 2})}; }, sizes(false),
                   sizes(true), 1e-5, true});
}

std::vector<OpCase> op_cases() {
  std::vector<OpCase> cases;
  auto rnd = [](std::vector<int64_t> shape) { return torch::randn(shape, kF64); };
  cases.push_back({"modulate",
                   [=] { return Tensors{rnd({3, 5, 8}), rnd({3, 1, 8}), rnd({3, 1, 8})}; },
                   [](const Tensors& t) { return modulate(t[0], t[1], t[2]); },
                   [](const Tensors& t) { return t[0] + t[0] * t[2] + t[1]; }});
  cases.push_back({"gated_residual",
                   [=] { return Tensors{rnd({3, 5, 8}), rnd({3, 1, 8}), rnd({3, 5, 8})}; },
                   [](const Tensors& t) { return gated_residual(t[0], t[1], t[2]); },
                   [](const Tensors& t) { return t[0] + t[1] * t[2]; }});
  cases.push_back({"linear on 3-D tokens (bias folded into the GEMM), contiguous and strided",
                   [=] { return Tensors{rnd({3, 5, 12}), rnd({7, 6}), rnd({7})}; },
                   [](const Tensors& t) {
                     torch::nn::LinearImpl l(6, 7);
                     l.to(t[0].device(), t[0].scalar_type());
                     torch::NoGradGuard ng;
                     l.weight.copy_(t[1]);
                     l.bias.copy_(t[2]);
                     auto halves = t[0].chunk(2, -1);  // a contiguous copy and a strided view
                     return torch::cat({linear(l, halves[0].contiguous()), linear(l, halves[1])}, -1);
                   },
                   [](const Tensors& t) {
                     auto h = t[0].chunk(2, -1);
                     return torch::cat({torch::matmul(h[0], t[1].t()) + t[2], torch::matmul(h[1], t[1].t()) + t[2]}, -1);
                   }});
  cases.push_back({"mlp (GELU in place at inference)",
                   [=] { return Tensors{rnd({2, 5, 6}), rnd({10, 6}), rnd({10}), rnd({6, 10}), rnd({6})}; },
                   [](const Tensors& t) {
                     MlpImpl m(6, 10);
                     m.to(t[0].device(), t[0].scalar_type());
                     torch::NoGradGuard ng;
                     m.fc1->weight.copy_(t[1]), m.fc1->bias.copy_(t[2]), m.fc2->weight.copy_(t[3]), m.fc2->bias.copy_(t[4]);
                     return m.forward(t[0]);
                   },
                   [](const Tensors& t) {
                     return torch::matmul(ref_gelu_tanh(torch::matmul(t[0], t[1].t()) + t[2]), t[3].t()) + t[4];
                   }});
  cases.push_back({"layer_norm",
                   [=] { return Tensors{rnd({2, 7, 12}) * 3 + 1}; },
                   [](const Tensors& t) { return layer_norm(t[0]); },
                   [](const Tensors& t) { return ref_layer_norm(t[0]); }});
  cases.push_back({"attention 2 heads",
                   [=] { return Tensors{rnd({3, 5, 8}), rnd({3, 7, 8}), rnd({3, 7, 8})}; },
                   [](const Tensors& t) { return multi_head_attention(t[0], t[1], t[2], 2); },
                   [](const Tensors& t) { return ref_attention(t[0], t[1], t[2], 2); }});
  cases.push_back({"attention on strided q/k/v (chunks of one qkv projection)",
                   [=] { return Tensors{rnd({3, 6, 24})}; },
                   [](const Tensors& t) {
                     auto p = t[0].chunk(3, -1);
                     return multi_head_attention(p[0], p[1], p[2], 2);
                   },
                   [](const Tensors& t) {
                     auto p = t[0].chunk(3, -1);
                     return ref_attention(p[0].contiguous(), p[1].contiguous(), p[2].contiguous(), 2);
                   }});
  cases.push_back({"attention, training path (autograd on)",
                   [=] { return Tensors{rnd({3, 5, 8}), rnd({3, 7, 8}), rnd({3, 7, 8})}; },
                   [](const Tensors& t) {
                     torch::AutoGradMode on(true);
                     return multi_head_attention(t[0].clone().requires_grad_(), t[1], t[2], 2).detach();
                   },
                   [](const Tensors& t) { return ref_attention(t[0], t[1], t[2], 2); }});
  cases.push_back({"attention with key mask",
                   [=] {
                     auto m = torch::ones({3, 7}, torch::kLong);
                     m[0].narrow(0, 4, 3).zero_();
                     m[2][1] = 0;
                     return Tensors{rnd({3, 5, 8}), rnd({3, 7, 8}), rnd({3, 7, 8}), m};
                   },
                   [](const Tensors& t) { return multi_head_attention(t[0], t[1], t[2], 4, t[3]); },
                   [](const Tensors& t) { return ref_attention(t[0], t[1], t[2], 4, t[3]); }});
  for (auto [from, to] : std::vector<std::pair<Grid, Grid>>{{{1, 8, 8}, {1, 3, 3}},
                                                            {{1, 6, 10}, {1, 4, 3}},
                                                            {{3, 5, 7}, {3, 2, 3}},
                                                            {{4, 4, 6}, {2, 3, 3}}}) {
    cases.push_back({"pool_tokens " + from.str() + " -> " + to.str(),
                     [=] { return Tensors{rnd({2, from.tokens(), 4})}; },
                     [=](const Tensors& t) { return pool_tokens(t[0], from, to); },
                     [=](const Tensors& t) { return ref_pool(t[0], from, to); }});
    cases.push_back({"upsample_tokens " + to.str() + " -> " + from.str(),
                     [=] { return Tensors{rnd({2, to.tokens(), 4})}; },
                     [=](const Tensors& t) { return upsample_tokens(t[0], to, from); },
                     [=](const Tensors& t) { return ref_upsample(t[0], to, from); }});
  }
  cases.push_back({"unpatchify 3x5 p2",
                   [=] { return Tensors{rnd({2, 15, 2 * 2 * 3})}; },
                   [](const Tensors& t) { return unpatchify(t[0], 2, 3, 3, 5); },
                   [](const Tensors& t) { return ref_unpatchify(t[0], 2, 3, 3, 5); }});
  cases.push_back({"sincos_pos_embed_2d 3x5",
                   [] { return Tensors{}; },
                   [](const Tensors&) { return sincos_pos_embed_2d(16, 3, 5); },
                   [](const Tensors&) { return ref_sincos_2d(16, 3, 5, 3, 5, 1.0); },
                   1e-7, true});
  cases.push_back({"sincos_pos_embed_2d 6x4 base 8 scale 2 (PixArt's interpolation)",
                   [] { return Tensors{}; },
                   [](const Tensors&) { return sincos_pos_embed_2d(16, 6, 4, 8, 8, 2.0); },
                   [](const Tensors&) { return ref_sincos_2d(16, 6, 4, 8, 8, 2.0); },
                   1e-7, true});
  add_pixart_op_cases(cases);
  for (const auto& bc : block_cases()) {
    auto blk = make_block(bc.mixer, bc.axis, bc.pixart);
    cases.push_back({"block " + bc.name,
                     [=] { return block_inputs(bc, 2, 16); },
                     [=](const Tensors& t) {
                       auto b = make_block(bc.mixer, bc.axis, bc.pixart);  // the same weights, in the inputs' dtype/device
                       b->to(t[0].device(), t[0].scalar_type());
                       return run_block(*b, block_tokens(bc, t), block_ctx(bc, t), bc.dense);
                     },
                     [=](const Tensors& t) { return ref_block(*blk, block_tokens(bc, t), block_ctx(bc, t), bc.dense); },
                     1e-5});
  }
  cases.push_back(sdtm_chain_case());
  return cases;
}

std::vector<torch::Device> devices() {
  std::vector<torch::Device> d{torch::kCPU};
  if (compat::cuda_available()) d.emplace_back(torch::kCUDA, 0);
  return d;
}

TEST(Ops, EveryOpMatchesItsPlainFormula) {
  const auto cases = op_cases();
  ASSERT_EQ(cases.size(), 9u + 2 * 4 + 3 + 2 + block_cases().size() + 1);  // the table is what it says
  int checked = 0;
  for (auto& c : cases) {
    torch::manual_seed(1);
    const Tensors in = c.inputs();
    torch::NoGradGuard ng;
    const auto ref = c.ref(in);
    for (const auto& dev : devices())
      for (auto dtype : {torch::kDouble, torch::kFloat}) {
        SCOPED_TRACE(c.name + " on " + dev.str() + (dtype == torch::kDouble ? " f64" : " f32"));
        Tensors moved;
        for (const auto& t : in)
          moved.push_back(t.is_floating_point() ? t.to(dev, dtype) : t.to(dev));
        const auto out = c.op(moved).to(torch::kCPU, torch::kDouble);
        ASSERT_EQ(out.sizes(), ref.sizes());
        EXPECT_LT(rel_l2(out, ref), dtype == torch::kDouble && !c.float32_result ? 1e-12 : c.tol32);
        ++checked;
      }
  }
  EXPECT_EQ(checked, static_cast<int>(2 * cases.size() * devices().size()));
}

// Central differences in float64 on a few elements of every input and every parameter.
void check_gradients(TransformerBlockImpl& b, Tensors in, const BlockCase& c) {
  torch::manual_seed(3);
  for (auto& t : in) t.requires_grad_(true);
  auto loss_of = [&]() {
    auto ctx = block_ctx(c, in);
    auto out = run_block(b, block_tokens(c, in), ctx, c.dense);
    return (out * torch::sin(torch::arange(out.numel(), kF64).view(out.sizes()))).sum();
  };
  b.zero_grad();
  loss_of().backward();
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (size_t i = 0; i < in.size(); ++i) targets.emplace_back("input " + std::to_string(i), in[i]);
  for (auto& p : b.named_parameters()) targets.emplace_back(p.key(), p.value());
  for (auto& [name, t] : targets) {
    ASSERT_TRUE(t.grad().defined()) << name << " gets no gradient";
    const auto grad = t.grad().clone();
    for (int k = 0; k < 3; ++k) {
      const int64_t idx = torch::randint(0, t.numel(), {1}).item<int64_t>();
      torch::NoGradGuard ng;
      auto flat = t.view(-1);
      const double orig = flat[idx].item<double>(), h = 1e-6;
      flat[idx] = orig + h;
      const double up = loss_of().item<double>();
      flat[idx] = orig - h;
      const double down = loss_of().item<double>();
      flat[idx] = orig;
      const double numeric = (up - down) / (2 * h), analytic = grad.view(-1)[idx].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << c.name << ": " << name << "[" << idx << "]";
    }
  }
}

TEST(Ops, EveryBlockTypeHasFiniteDifferenceGradients) {
  for (const auto& c : block_cases()) {
    SCOPED_TRACE(c.name);
    auto b = make_block(c.mixer, c.axis, c.pixart);
    check_gradients(*b, block_inputs(c, 2, 16), c);
  }
}

// At the full grid the sparse blocks are the dense computation: pooling and upsampling are identities.
TEST(Ops, SparseBlocksAtTheFullGridPoolAndUpsampleNothing) {
  const Grid g{2, 3, 4};
  torch::manual_seed(5);
  auto x = torch::randn({2, g.tokens(), 8}, kF64);
  EXPECT_TRUE(torch::equal(pool_tokens(x, g, g), x));
  EXPECT_TRUE(torch::equal(upsample_tokens(x, g, g), x));
}

// The temporal rearrangement for B > 1 and non-square frames: sequence n of sample b holds the
// tokens (b, f, n) for every frame f, and the round trip is exact.
TEST(Ops, TemporalSequencesReorderTokensPerSampleAndLocation) {
  const Grid g{3, 2, 5};
  auto x = torch::arange(2 * g.tokens() * 4, kF64).view({2, g.tokens(), 4});
  auto seqs = to_sequences(x, g, BlockAxis::Temporal);
  ASSERT_EQ(seqs.sizes(), (std::vector<int64_t>{2 * g.per_frame(), g.frames, 4}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t n = 0; n < g.per_frame(); ++n)
      for (int64_t f = 0; f < g.frames; ++f)
        EXPECT_TRUE(torch::equal(seqs[b * g.per_frame() + n][f], x[b][f * g.per_frame() + n])) << b << " " << n << " " << f;
  EXPECT_TRUE(torch::equal(from_sequences(seqs, 2, g, BlockAxis::Temporal), x));
  EXPECT_TRUE(torch::equal(from_sequences(to_sequences(x, g, BlockAxis::Spatial), 2, g, BlockAxis::Spatial), x));
}

}  // namespace

namespace {

// SparseDiT-PixArt at the full grid: a sparse-gen block (attn.q | attn.kv = the rows of the dense
// block's qkv) is the dense PixArt block, and so is a recovery block whose merge keeps the sparse
// tokens (W1 = I, W2 = 0): pooling and upsampling are identities, the cross-attention and MLP the same.
TEST(Ops, PixArtSparseBlocksAtTheFullGridAreTheDenseBlock) {
  const BlockCase c{"pixart dense 4x5", TokenMixer::Attention, BlockAxis::Spatial, {1, 4, 5}, {1, 4, 5}, true};
  const auto in = block_inputs(c, 2, 16);
  const auto ctx = block_ctx(c, in);
  auto dense = make_block(TokenMixer::Attention, BlockAxis::Spatial, true);
  torch::NoGradGuard ng;
  const auto ref = dense->forward(in[0], c.dense, ctx);
  const auto dense_params = dense->named_parameters();
  const int64_t C = 16;
  for (auto mixer : {TokenMixer::SparseGen, TokenMixer::Recovery}) {
    SCOPED_TRACE(mixer_name(mixer));
    auto b = make_block(mixer, BlockAxis::Spatial, true);
    for (auto& p : b->named_parameters()) {
      const auto& k = p.key();
      auto v = p.value();
      if (k.rfind("attn.q.", 0) == 0) v.copy_(dense_params["attn.qkv." + k.substr(7)].narrow(0, 0, C));
      else if (k.rfind("attn.kv.", 0) == 0) v.copy_(dense_params["attn.qkv." + k.substr(8)].narrow(0, C, 2 * C));
      else if (k == "merged_layer1.weight") v.copy_(torch::eye(C, kF64));
      else if (k.rfind("merged_layer", 0) == 0) v.zero_();
      else v.copy_(dense_params[k]);
    }
    // Recovery's dense input only enters through W2 = 0: give it something else to show it is unused.
    const auto other = torch::randn_like(in[0]);
    const auto out = mixer == TokenMixer::SparseGen ? b->forward_gen(in[0], in[0], ctx) : b->forward_recovery(in[0], other, ctx);
    EXPECT_LT(rel_l2(out, ref), 1e-12);
  }
}

}  // namespace

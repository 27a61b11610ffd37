#include "models/block.h"

#include "util/error.h"

namespace sdit {

const char* mixer_name(TokenMixer m) {
  switch (m) {
    case TokenMixer::Attention: return "attention";
    case TokenMixer::Pooling: return "poolingformer";
    case TokenMixer::SparseGen: return "sparse-gen";
    case TokenMixer::Recovery: return "recovery";
  }
  return "?";
}

Modulation Modulation::from_chunks(const std::vector<torch::Tensor>& m) {
  if (m.size() != 6) fail("adaLN modulation needs 6 chunks, got ", m.size());
  auto b = [](const torch::Tensor& t) { return t.dim() == 2 ? t.unsqueeze(1) : t; };
  return {b(m[0]), b(m[1]), b(m[2]), b(m[3]), b(m[4]), b(m[5])};
}

torch::Tensor to_sequences(const torch::Tensor& x, const Grid& g, BlockAxis axis) {
  const int64_t B = x.size(0), C = x.size(2);
  if (axis == BlockAxis::Spatial) return x.reshape({B * g.frames, g.per_frame(), C});
  return x.reshape({B, g.frames, g.per_frame(), C}).transpose(1, 2).reshape({B * g.per_frame(), g.frames, C});
}

torch::Tensor from_sequences(const torch::Tensor& s, int64_t B, const Grid& g, BlockAxis axis) {
  const int64_t C = s.size(2);
  if (axis == BlockAxis::Spatial) return s.reshape({B, g.tokens(), C});
  return s.reshape({B, g.per_frame(), g.frames, C}).transpose(1, 2).reshape({B, g.tokens(), C});
}

TransformerBlockImpl::TransformerBlockImpl(const Options& o) : opt_(o) {
  if (o.hidden <= 0 || o.heads <= 0 || o.hidden % o.heads != 0)
    fail("hidden size ", o.hidden, " is not divisible by ", o.heads, " heads");
  switch (o.mixer) {
    case TokenMixer::Attention: self_attn = register_module("attn", SelfAttention(o.hidden, o.heads)); break;
    case TokenMixer::Pooling: pool_attn = register_module("attn", PoolAttention(o.hidden)); break;
    case TokenMixer::SparseGen:
    case TokenMixer::Recovery: cross_attn = register_module("attn", CrossAttention(o.hidden, o.heads)); break;
  }
  mlp = register_module("mlp", Mlp(o.hidden, static_cast<int64_t>(static_cast<double>(o.hidden) * o.mlp_ratio)));
  if (o.mixer == TokenMixer::Recovery) {
    merged_layer1 = register_module("merged_layer1", torch::nn::Linear(o.hidden, o.hidden));
    merged_layer2 = register_module("merged_layer2", torch::nn::Linear(o.hidden, o.hidden));
  }
  if ((o.mixer == TokenMixer::SparseGen || o.mixer == TokenMixer::Recovery) && o.axis != BlockAxis::Spatial)
    fail("a ", mixer_name(o.mixer), " block changes the token set of each frame, so it must be a spatial block");
}

torch::Tensor TransformerBlockImpl::self_attention(const torch::Tensor& x_mod, const Grid& g) {
  return from_sequences(self_attn->forward(to_sequences(x_mod, g, opt_.axis)), x_mod.size(0), g, opt_.axis);
}

torch::Tensor TransformerBlockImpl::pool_attention(const torch::Tensor& x_mod, const Grid& g) {
  const int64_t B = x_mod.size(0), C = x_mod.size(2);
  auto pooled = pool_attn->forward(to_sequences(x_mod, g, opt_.axis));  // (S, 1, C)
  // One sequence per sample: (B, 1, C) broadcasts over its tokens in the residual add, as the
  // reference's mean-over-all-tokens does. Otherwise spread each sequence's mean over its tokens.
  if (pooled.size(0) == B) return pooled;
  auto spread = opt_.axis == BlockAxis::Spatial ? pooled.view({B, g.frames, 1, C})
                                                : pooled.view({B, 1, g.per_frame(), C});
  return spread.expand({B, g.frames, g.per_frame(), C}).reshape({B, g.tokens(), C});
}

torch::Tensor TransformerBlockImpl::cross_attention(const torch::Tensor& q_in, const Grid& qg,
                                                    const torch::Tensor& kv_in, const Grid& kvg) {
  // Frame by frame while pooling keeps the frames; across the whole sample when it pools them too.
  const int64_t B = q_in.size(0), C = q_in.size(2);
  const bool per_frame = qg.frames == kvg.frames;
  auto q = per_frame ? q_in.reshape({B * qg.frames, qg.per_frame(), C}) : q_in;
  auto kv = per_frame ? kv_in.reshape({B * kvg.frames, kvg.per_frame(), C}) : kv_in;
  return cross_attn->forward(q, kv).reshape({B, qg.tokens(), C});
}

torch::Tensor TransformerBlockImpl::finish(const torch::Tensor& x, const torch::Tensor& mixed, const Grid& grid,
                                           const BlockContext& ctx, const Modulation& m) {
  auto h = gated_residual(x, m.gate_msa, mixed);
  h = extra(h, grid, ctx);
  return gated_residual(h, m.gate_mlp, mlp->forward(modulate(layer_norm(h), m.shift_mlp, m.scale_mlp)));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const Grid& grid, const BlockContext& ctx) {
  const auto m = modulation(ctx);
  const auto x_mod = modulate(layer_norm(x), m.shift_msa, m.scale_msa);
  switch (opt_.mixer) {
    case TokenMixer::Attention: return finish(x, self_attention(x_mod, grid), grid, ctx, m);
    case TokenMixer::Pooling: return finish(x, pool_attention(x_mod, grid), grid, ctx, m);
    default: fail("a ", mixer_name(opt_.mixer), " block needs both the sparse and the dense tokens");
  }
}

torch::Tensor TransformerBlockImpl::forward_gen(const torch::Tensor& sparse, const torch::Tensor& dense,
                                                const BlockContext& ctx) {
  if (opt_.mixer != TokenMixer::SparseGen) fail("forward_gen called on a ", mixer_name(opt_.mixer), " block");
  const auto m = modulation(ctx);
  // Queries and keys share the block's modulation (paper Eq. 2).
  auto a = cross_attention(modulate(layer_norm(sparse), m.shift_msa, m.scale_msa), ctx.sparse,
                           modulate(layer_norm(dense), m.shift_msa, m.scale_msa), ctx.dense);
  return finish(sparse, a, ctx.sparse, ctx, m);
}

torch::Tensor TransformerBlockImpl::forward_recovery(const torch::Tensor& sparse, const torch::Tensor& dense,
                                                     const BlockContext& ctx) {
  if (opt_.mixer != TokenMixer::Recovery) fail("forward_recovery called on a ", mixer_name(opt_.mixer), " block");
  // W1 commutes with nearest upsampling (it only replicates tokens), so apply it to the M sparse tokens.
  auto merged = upsample_tokens(linear(merged_layer1, sparse), ctx.sparse, ctx.dense) + linear(merged_layer2, dense);
  const auto m = modulation(ctx);
  auto a = cross_attention(modulate(layer_norm(merged), m.shift_msa, m.scale_msa), ctx.dense,
                           modulate(layer_norm(sparse), m.shift_msa, m.scale_msa), ctx.sparse);
  return finish(merged, a, ctx.dense, ctx, m);
}

AdaLNZeroBlockImpl::AdaLNZeroBlockImpl(const Options& o) : TransformerBlockImpl(o) {
  adaLN_modulation = register_module("adaLN_modulation", make_adaln(o.hidden, 6));
}

Modulation AdaLNZeroBlockImpl::modulation(const BlockContext& ctx) {
  return Modulation::from_chunks(adaLN_modulation->forward(ctx.c).chunk(6, 1));
}

}  // namespace sdit

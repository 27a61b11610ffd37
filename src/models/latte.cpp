// The Latte network (models/latte.py's Latte, forward and initialize_weights; docs/latte.md §2) on
// the shared trunk, and the layout rules of SparseDiT-Latte (§4).
#include "models/latte.h"

#include "util/error.h"

namespace sdit {

namespace {

// The first sparse-gen or recovery block of the layout that would sit on a temporal block.
std::optional<BlockSlot> misplaced_slot(const SparseLayout& layout, int64_t depth) {
  for (const auto& slot : block_order(depth, &layout))
    if ((slot.mixer == TokenMixer::SparseGen || slot.mixer == TokenMixer::Recovery) &&
        latte_block_axis(slot.index) == BlockAxis::Temporal)
      return slot;
  return std::nullopt;
}

}  // namespace

void check_latte_layout(const SparseLayout& layout, int64_t depth) {
  const auto slot = misplaced_slot(layout, depth);
  if (!slot) return;
  fail("layout ", layout.str(), " puts the ", mixer_name(slot->mixer), " block ", slot->prefix, " on Latte block ",
       slot->index, ", a temporal block; sparse-gen and recovery change each frame's token set, so they must be "
       "spatial blocks (even indices), e.g. layout ", latte_default_layout(depth).str());
}

SparseLayout latte_default_layout(int64_t depth) {
  if (depth < 4 || depth % 2 != 0) fail("a SparseDiT-Latte needs an even depth of at least 4, got ", depth);
  // The DiT split where its sparse-gen and recovery blocks land on spatial blocks (Latte-XL: 28).
  try {
    const SparseLayout dit = SparseLayout::default_for_depth(depth);
    if (!misplaced_slot(dit, depth)) return dit;
  } catch (const Error&) {  // too shallow for the DiT split
  }
  // Otherwise whole pairs: a Poolingformer pair and a dense top pair where the depth allows, SDTMs of
  // an even size (gen, an odd number of sparse blocks, recovery, one dense temporal block), the
  // blocks left over added to the top.
  SparseLayout l;
  l.poolingformers = depth >= 6 ? 2 : 0;
  l.top = depth >= 8 ? 2 : 0;
  l.gen = l.recovery = l.dense = 1;
  const int64_t middle = depth - l.poolingformers - l.top;
  for (l.sdtms = std::min<int64_t>(4, middle / 4); l.sdtms > 1; --l.sdtms)
    if (middle % l.sdtms == 0 && (middle / l.sdtms) % 2 == 0) break;
  const int64_t per = (middle / l.sdtms) / 2 * 2;
  l.sparse = per - 3;
  l.top += middle - per * l.sdtms;
  return l;
}

LatteImpl::LatteImpl(const LatteConfig& cfg, std::optional<SparseLayout> layout) : cfg_(cfg) {
  cfg.validate();
  const auto& c = cfg_.dit;
  if (layout) check_latte_layout(*layout, c.depth);
  // Registered in latte.py's order: pos_embed, temp_embed, embedders, blocks, final layer.
  pos_embed = register_parameter("pos_embed", torch::zeros({1, c.tokens(), c.hidden_size}), /*requires_grad=*/false);
  temp_embed =
      register_parameter("temp_embed", torch::zeros({1, cfg.num_frames, c.hidden_size}), /*requires_grad=*/false);
  x_embedder = register_module("x_embedder", PatchEmbed(c.in_channels, c.hidden_size, c.patch_size));
  t_embedder = register_module("t_embedder", TimestepEmbedder(c.hidden_size));
  if (cfg.class_conditional())
    y_embedder = register_module("y_embedder", LabelEmbedder(c.num_classes, c.hidden_size, 0.1));
  TransformerBlockImpl::Options bo;
  bo.hidden = c.hidden_size;
  bo.heads = c.num_heads;
  bo.mlp_ratio = c.mlp_ratio;
  trunk_ = Trunk(*this, c.depth, layout, [&](TokenMixer mixer, int64_t index) {
    auto o = bo;
    o.mixer = mixer;
    o.axis = latte_block_axis(index);  // blocks[2k] spatial, blocks[2k+1] temporal
    return std::make_shared<AdaLNZeroBlockImpl>(o);
  });
  final_layer = register_module("final_layer", FinalLayer(c.hidden_size, c.patch_size, c.out_channels()));
}

torch::Tensor LatteImpl::add_temp_embed(const torch::Tensor& x, const Grid& grid) const {
  const int64_t F = cfg_.num_frames, C = cfg_.dit.hidden_size;
  auto e = temp_embed;  // (1, F, C): one vector per frame
  // A grid whose frames were pooled jointly gets the pooled embedding: pooling is linear, so this is
  // what pooling x + temp_embed would give.
  if (grid.frames != F) e = pool_tokens(e, Grid{F, 1, 1}, Grid{grid.frames, 1, 1});
  const int64_t B = x.size(0);
  return (x.view({B, grid.frames, grid.per_frame(), C}) + e.view({1, grid.frames, 1, C})).view({B, grid.tokens(), C});
}

torch::Tensor LatteImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                                 const Grid& sparse) {
  const auto& c = cfg_.dit;
  const int64_t F = cfg_.num_frames;
  if (x.dim() != 5 || x.size(1) != F || x.size(2) != c.in_channels || x.size(3) != c.input_size ||
      x.size(4) != c.input_size)
    fail("Latte input has shape ", shape_str(x.sizes().vec()), ", expected [B, ", F, ", ", c.in_channels, ", ",
         c.input_size, ", ", c.input_size, "] (frames before channels; the frame count is fixed by temp_embed)");
  const int64_t B = x.size(0);
  if (t.dim() != 1 || t.size(0) != B) fail("timesteps must be 1-D with one entry per sample");
  if (cfg_.class_conditional() && (!y.defined() || y.dim() != 1 || y.size(0) != B))
    fail("a class-conditional Latte needs one label per sample");
  BlockContext ctx;
  ctx.dense = dense_grid();
  ctx.sparse = sparse.empty() ? ctx.dense : sparse;
  // 'b f c h w -> (b f) c h w': every frame patchified on its own; rows b·F + f are one sample's frames.
  auto patches = x_embedder->forward(x.flatten(0, 1));  // (B·F, N, C)
  if (trace_) trace_("patch", patches.reshape({B, ctx.dense.tokens(), c.hidden_size}));
  auto tokens = (patches + pos_embed).reshape({B, ctx.dense.tokens(), c.hidden_size});
  // One conditioning vector per sample: the reference repeats it over the rows of each sample.
  ctx.c = t_embedder->forward(t);
  if (cfg_.class_conditional()) ctx.c = ctx.c + y_embedder->forward(y);
  const BlockHook hook = [&](int64_t index, const torch::Tensor& h) {
    if (trace_ && index > 0) trace_("block" + std::to_string(index - 1), h);
    if (index != 1) return h;
    // temp_embed only before the first temporal block (latte.py: i == 0, before blocks[1]).
    const auto out = add_temp_embed(h, h.size(1) == ctx.dense.tokens() ? ctx.dense : ctx.sparse);
    if (trace_) trace_("block1_in", out);
    return out;
  };
  auto h = trunk_.forward(tokens, ctx, hook);
  if (trace_) trace_("block" + std::to_string(c.depth - 1), h);
  auto out = final_layer->forward(h, ctx.c);  // (B, F·N, p²·Cout)
  if (trace_) trace_("final", out);
  const int64_t g = c.grid();
  return unpatchify(out.reshape({B * F, g * g, out.size(2)}), c.patch_size, c.out_channels(), g, g)
      .view({B, F, c.out_channels(), c.input_size, c.input_size});
}

void initialize_latte_weights(LatteImpl& model) {
  initialize_adaln_zero_weights(model);
  torch::NoGradGuard ng;
  const auto& c = model.config();
  model.pos_embed.copy_(sincos_pos_embed_2d(c.dit.hidden_size, c.dit.grid()));
  model.temp_embed.copy_(sincos_pos_embed_1d(c.dit.hidden_size, c.num_frames));
}

}  // namespace sdit

// The PixArt network and its training initialisation (PixArt.py, PixArtMS.py, PixArt_blocks.py).
#include "models/pixart.h"

#include <cmath>

#include "util/error.h"

namespace sdit {

PixArtBlockImpl::PixArtBlockImpl(const Options& o) : TransformerBlockImpl(o) {
  scale_shift_table =
      register_parameter("scale_shift_table", torch::randn({6, o.hidden}) / std::sqrt(static_cast<double>(o.hidden)));
  text_attn = register_module("cross_attn", CrossAttention(o.hidden, o.heads, "q_linear", "kv_linear"));
}

Modulation PixArtBlockImpl::modulation(const BlockContext& ctx) {
  // adaLN-single: the shared t0 (B, 6C) plus this block's table, chunked into six (B, 1, C).
  const int64_t B = ctx.c.size(0);
  return Modulation::from_chunks((scale_shift_table.unsqueeze(0) + ctx.c.reshape({B, 6, -1})).chunk(6, 1));
}

torch::Tensor PixArtBlockImpl::extra(const torch::Tensor& h, const Grid&, const BlockContext& ctx) {
  if (!ctx.context.defined()) fail("a PixArt block needs the caption tokens (conditioning context)");
  // No norm, no modulation, no gate; a sparse block's own tokens are the queries (docs/pixart.md §10).
  // The reference packs every sample's valid caption tokens into one sequence and attends through a
  // block-diagonal mask; a key mask per sample is the same function (docs/pixart.md §2.7).
  return h + text_attn->forward(h, ctx.context, ctx.context_mask);
}

T2IFinalLayerImpl::T2IFinalLayerImpl(int64_t hidden, int64_t patch, int64_t out_channels) {
  scale_shift_table =
      register_parameter("scale_shift_table", torch::randn({2, hidden}) / std::sqrt(static_cast<double>(hidden)));
  linear = register_module("linear", torch::nn::Linear(hidden, patch * patch * out_channels));
}

torch::Tensor T2IFinalLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& t_emb) {
  auto m = (scale_shift_table.unsqueeze(0) + t_emb.unsqueeze(1)).chunk(2, 1);  // shift, scale: (B, 1, C)
  return linear->forward(modulate(layer_norm(x), m[0], m[1]));
}

CaptionEmbedderImpl::CaptionEmbedderImpl(int64_t caption_channels, int64_t hidden, int64_t tokens, bool null_caption,
                                         double dropout_)
    : dropout(dropout_) {
  // Registered before y_proj, as the reference's buffer precedes its child module in the state dict.
  if (null_caption)
    y_embedding = register_buffer(
        "y_embedding", torch::randn({tokens, caption_channels}) / std::sqrt(static_cast<double>(caption_channels)));
  y_proj = register_module("y_proj", Mlp(caption_channels, hidden, hidden));
}

torch::Tensor CaptionEmbedderImpl::forward(const torch::Tensor& caption) {
  auto y = caption;
  if (is_training() && dropout > 0) {
    if (!y_embedding.defined())
      fail("caption dropout needs the learned null caption (y_embedder.y_embedding), which this model lacks "
           "(a diffusers folder drops it): fine-tune from the original .pth");
    if (y.size(1) != y_embedding.size(0))
      fail("caption dropout: captions of ", y.size(1), " tokens, the null caption has ", y_embedding.size(0));
    auto drop = torch::rand({y.size(0)}, y.options().dtype(torch::kFloat32)) < dropout;
    y = torch::where(drop.view({-1, 1, 1}), y_embedding.unsqueeze(0).to(y.dtype()), y);
  }
  return y_proj->forward(y);
}

torch::Tensor embed_sizes(TimestepEmbedderImpl& embedder, const torch::Tensor& values, int64_t batch) {
  auto s = values.dim() == 1 ? values.unsqueeze(1) : values;
  if (s.dim() != 2) fail("size condition of shape ", shape_str(values.sizes().vec()), ": expected (B, d)");
  if (s.size(0) != batch) {
    if (s.size(0) == 0 || batch % s.size(0) != 0)
      fail("size condition has ", s.size(0), " rows for a batch of ", batch);
    s = s.repeat({batch / s.size(0), 1});
  }
  // "(b d) -> b (d d2)": each row's values embedded one by one, then concatenated.
  return embedder.forward(s.reshape({-1})).reshape({batch, -1});
}

PixArtImpl::PixArtImpl(const PixArtConfig& cfg, std::optional<SparseLayout> layout) : cfg_(cfg) {
  cfg.validate();
  const auto& c = cfg_;
  const int64_t C = c.hidden_size;
  pos_embed = register_buffer("pos_embed", sincos_pos_embed_2d(C, c.base_size(), c.base_size(), c.base_size(),
                                                               c.base_size(), c.lewei_scale));
  x_embedder = register_module("x_embedder", PatchEmbed(c.in_channels, C, c.patch_size));
  t_embedder = register_module("t_embedder", TimestepEmbedder(C));
  t_block = register_module("t_block", make_adaln(C, 6));
  y_embedder = register_module("y_embedder", CaptionEmbedder(c.caption_channels, C, c.model_max_length,
                                                               c.null_caption, c.class_dropout_prob));
  TransformerBlockImpl::Options bo;
  bo.hidden = C;
  bo.heads = c.num_heads;
  bo.mlp_ratio = c.mlp_ratio;
  trunk_ = Trunk(*this, c.depth, layout, [&](TokenMixer mixer, int64_t) {
    auto o = bo;
    o.mixer = mixer;
    return std::make_shared<PixArtBlockImpl>(o);
  });
  final_layer = register_module("final_layer", T2IFinalLayer(C, c.patch_size, c.out_channels()));
  if (c.micro_conditions) {
    csize_embedder = register_module("csize_embedder", TimestepEmbedder(c.size_emb_dim()));
    ar_embedder = register_module("ar_embedder", TimestepEmbedder(c.size_emb_dim()));
  }
}

Grid PixArtImpl::input_grid(const torch::Tensor& x) const {
  const auto& c = cfg_;
  if (x.dim() != 4 || x.size(1) != c.in_channels)
    fail("model input has shape ", shape_str(x.sizes().vec()), ", expected [B, ", c.in_channels, ", H, W]");
  const int64_t H = x.size(2), W = x.size(3);
  // PixArt's timm PatchEmbed asserts the training size; PixArtMS takes any multiple of the patch.
  if (!c.micro_conditions && (H != c.input_size || W != c.input_size))
    fail("this PixArt takes ", c.input_size, "x", c.input_size, " latents (", c.input_size * 8, " px); got ", H, "x",
         W, " (only the multi-scale PixArt-MS takes other sizes)");
  if (H % c.patch_size != 0 || W % c.patch_size != 0)
    fail("latent size ", H, "x", W, " is not a multiple of the patch size ", c.patch_size);
  return Grid{1, H / c.patch_size, W / c.patch_size};
}

torch::Tensor PixArtImpl::position_embedding(int64_t h, int64_t w, const torch::Device& device, torch::Dtype dtype) {
  std::lock_guard<std::mutex> lock(pe_mutex_);
  const auto key = std::make_tuple(h, w, device.str(), static_cast<int>(dtype));
  auto it = pe_cache_.find(key);
  if (it != pe_cache_.end()) return it->second;
  const double base = static_cast<double>(cfg_.base_size());
  auto pe = sincos_pos_embed_2d(cfg_.hidden_size, h, w, base, base, cfg_.lewei_scale).to(device, dtype);
  if (pe_cache_.size() > 16) pe_cache_.clear();  // a few sizes at a time; bounded for long-running callers
  return pe_cache_[key] = pe;
}

BlockContext PixArtImpl::block_context(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c,
                                       const Grid& dense, const Grid& sparse, torch::Tensor& t_emb, PixArtTaps* taps) {
  const int64_t B = x.size(0);
  const auto dtype = x_embedder->proj->weight.scalar_type();
  if (t.dim() != 1 || t.size(0) != B) fail("timesteps must be 1-D with one entry per sample");
  // The reference casts the timestep to the model's dtype first (fp16 rounds 874.125 to 874).
  t_emb = t_embedder->forward(t.to(dtype));
  if (taps) taps->t_embedder = t_emb;
  if (cfg_.micro_conditions) {
    if (!c.img_hw.defined() || !c.aspect_ratio.defined())
      fail("PixArt-MS needs the micro-conditions img_hw (pixels [h, w]) and aspect_ratio");
    auto csize = embed_sizes(*csize_embedder, c.img_hw.to(dtype), B);
    auto ar = embed_sizes(*ar_embedder, c.aspect_ratio.to(dtype), B);
    if (taps) taps->csize_embedder = csize, taps->ar_embedder = ar;
    t_emb = t_emb + torch::cat({csize, ar}, 1);
  }
  BlockContext ctx;
  ctx.c = t_block->forward(t_emb);
  if (taps) taps->t_block = ctx.c;
  if (!c.context.defined()) fail("PixArt needs caption features (conditioning context)");
  auto y = c.context.dim() == 4 ? c.context.squeeze(1) : c.context;  // (B, 1, L, Cc) as the reference takes it
  if (y.dim() != 3 || y.size(0) != B || y.size(2) != cfg_.caption_channels)
    fail("caption features have shape ", shape_str(c.context.sizes().vec()), ", expected [", B, ", L, ",
         cfg_.caption_channels, "]");
  ctx.context = y_embedder->forward(y.to(dtype));
  if (taps) taps->y_embedder = ctx.context.unsqueeze(1);
  if (c.context_mask.defined()) {
    auto m = c.context_mask.dim() == 4 ? c.context_mask.squeeze(1).squeeze(1) : c.context_mask;
    if (m.dim() != 2 || m.size(1) != y.size(1) || m.size(0) == 0 || B % m.size(0) != 0)
      fail("caption mask has shape ", shape_str(c.context_mask.sizes().vec()), " for ", B, " captions of ", y.size(1),
           " tokens");
    ctx.context_mask = m.size(0) == B ? m : m.repeat({B / m.size(0), 1});
  }
  ctx.dense = dense;
  ctx.sparse = sparse.empty() ? dense : sparse;
  return ctx;
}

torch::Tensor PixArtImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c,
                                  const Grid& sparse, PixArtTaps* taps) {
  const auto& cfg = cfg_;
  const Grid dense = input_grid(x);
  const auto dtype = x_embedder->proj->weight.scalar_type();
  torch::Tensor t_emb;
  const BlockContext ctx = block_context(x, t, c, dense, sparse, t_emb, taps);
  auto tokens = x_embedder->forward(x.to(dtype));
  const auto pe = position_embedding(dense.h, dense.w, x.device(), dtype);
  if (taps) taps->x_embedder = tokens, taps->pos_embed = pe;
  tokens = tokens + pe;
  BlockHook hook;
  if (taps) {
    taps->blocks.clear();
    hook = [taps](int64_t index, const torch::Tensor& h) {
      if (index > 0) taps->blocks.push_back(h);  // the input of block i is the output of block i-1
      return h;
    };
  }
  auto h = trunk_.forward(tokens, ctx, hook);
  if (taps) taps->blocks.push_back(h);
  auto out = final_layer->forward(h, t_emb);
  if (taps) taps->final_layer = out;
  return unpatchify(out, cfg.patch_size, cfg.out_channels(), dense.h, dense.w);
}

void initialize_pixart_weights(PixArtImpl& model) {
  torch::NoGradGuard ng;
  const auto& cfg = model.config();
  // cross_attn.proj and the output layer start at zero, so a fresh model outputs 0.
  init_transformer_weights(model, [](const std::string& k) {
    return k.find("cross_attn.proj.") != std::string::npos || k.rfind("final_layer.linear.", 0) == 0;
  });
  auto params = model.named_parameters();
  const double inv_sqrt_c = 1.0 / std::sqrt(static_cast<double>(cfg.hidden_size));
  for (auto& p : params) {
    const auto& k = p.key();
    if (k.size() >= 17 && k.compare(k.size() - 17, 17, "scale_shift_table") == 0)
      p.value().copy_(torch::randn(p.value().sizes()) * inv_sqrt_c);
  }
  model.pos_embed.copy_(model.position_embedding(cfg.base_size(), cfg.base_size(), torch::kCPU, torch::kFloat32));
  std::vector<std::string> embedders = {"t_embedder.mlp.0.weight", "t_embedder.mlp.2.weight", "t_block.1.weight",
                                        "y_embedder.y_proj.fc1.weight", "y_embedder.y_proj.fc2.weight"};
  if (cfg.micro_conditions)
    for (auto k : {"csize_embedder.mlp.0.weight", "csize_embedder.mlp.2.weight", "ar_embedder.mlp.0.weight",
                   "ar_embedder.mlp.2.weight"})
      embedders.emplace_back(k);
  for (const auto& k : embedders) torch::nn::init::normal_(params[k], 0.0, 0.02);
  if (model.y_embedder->y_embedding.defined())
    model.y_embedder->y_embedding.copy_(torch::randn(model.y_embedder->y_embedding.sizes()) /
                                        std::sqrt(static_cast<double>(cfg.caption_channels)));
}

}  // namespace sdit

// The DiT network and its training initialisation (models.py's DiT, initialize_weights).
#include "models/dit.h"

#include "util/error.h"

namespace sdit {

DiTImpl::DiTImpl(const DiTConfig& cfg, std::optional<SparseLayout> layout) : cfg_(cfg) {
  cfg.validate();
  const auto& c = cfg_;
  // Registered in models.py's order: pos_embed, embedders, blocks, final layer.
  pos_embed = register_parameter("pos_embed", torch::zeros({1, c.tokens(), c.hidden_size}), /*requires_grad=*/false);
  x_embedder = register_module("x_embedder", PatchEmbed(c.in_channels, c.hidden_size, c.patch_size));
  t_embedder = register_module("t_embedder", TimestepEmbedder(c.hidden_size));
  y_embedder = register_module("y_embedder", LabelEmbedder(c.num_classes, c.hidden_size, 0.1));
  TransformerBlockImpl::Options bo;
  bo.hidden = c.hidden_size;
  bo.heads = c.num_heads;
  bo.mlp_ratio = c.mlp_ratio;
  trunk_ = Trunk(*this, c.depth, layout, [&](TokenMixer mixer, int64_t) {
    auto o = bo;
    o.mixer = mixer;
    return std::make_shared<AdaLNZeroBlockImpl>(o);
  });
  final_layer = register_module("final_layer", FinalLayer(c.hidden_size, c.patch_size, c.out_channels()));
}

torch::Tensor DiTImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                               const Grid& sparse) {
  const auto& c = cfg_;
  if (x.dim() != 4 || x.size(1) != c.in_channels || x.size(2) != c.input_size || x.size(3) != c.input_size)
    fail("model input has shape ", shape_str(x.sizes().vec()), ", expected [B, ", c.in_channels, ", ", c.input_size,
         ", ", c.input_size, "]");
  if (t.dim() != 1 || !y.defined() || y.dim() != 1 || t.size(0) != x.size(0) || y.size(0) != x.size(0))
    fail("timesteps and labels must be 1-D with one entry per sample");
  BlockContext ctx;
  ctx.dense = square_grid(c.grid());
  ctx.sparse = sparse.empty() ? ctx.dense : sparse;
  auto tokens = x_embedder->forward(x) + pos_embed;                 // (B, N, C)
  ctx.c = t_embedder->forward(t) + y_embedder->forward(y);          // (B, C)
  auto h = trunk_.forward(tokens, ctx);                             // (B, N, C)
  return unpatchify(final_layer->forward(h, ctx.c), c.patch_size, c.out_channels(), c.grid(), c.grid());
}

void initialize_dit_weights(DiTImpl& model) {
  initialize_adaln_zero_weights(model);
  torch::NoGradGuard ng;
  model.named_parameters()["pos_embed"].copy_(sincos_pos_embed_2d(model.config().hidden_size, model.config().grid()));
}

void initialize_adaln_zero_weights(torch::nn::Module& model) {
  init_transformer_weights(model, [](const std::string& k) {
    return k.find("adaLN_modulation.1.") != std::string::npos || k.rfind("final_layer.linear.", 0) == 0;
  });
  torch::NoGradGuard ng;
  auto params = model.named_parameters();
  if (auto* y = params.find("y_embedder.embedding_table.weight")) torch::nn::init::normal_(*y, 0.0, 0.02);
  torch::nn::init::normal_(params["t_embedder.mlp.0.weight"], 0.0, 0.02);
  torch::nn::init::normal_(params["t_embedder.mlp.2.weight"], 0.0, 0.02);
}

}  // namespace sdit

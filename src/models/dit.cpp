#include "models/dit.h"

#include "io/checkpoint.h"
#include "util/error.h"

namespace sdit {

DiTBlockImpl::DiTBlockImpl(int64_t hidden, int64_t heads, double mlp_ratio) : AdaLNBlockImpl(hidden, mlp_ratio) {
  attn = register_module("attn", SelfAttention(hidden, heads));
}

torch::Tensor DiTBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& c) {
  auto m = modulation(c);
  return finish(x, attn->forward(modulate(layer_norm(x), m[0], m[1])), m);
}

DiTStemImpl::DiTStemImpl(const DiTConfig& cfg) : cfg_(cfg) {
  if (cfg.hidden_size <= 0 || cfg.num_heads <= 0 || cfg.hidden_size % cfg.num_heads != 0)
    fail("hidden size ", cfg.hidden_size, " is not divisible by ", cfg.num_heads, " heads");
  if (cfg.patch_size <= 0 || cfg.input_size % cfg.patch_size != 0)
    fail("input size ", cfg.input_size, " is not a multiple of the patch size ", cfg.patch_size);
}

void DiTStemImpl::register_stem() {
  const auto& c = cfg_;
  pos_embed = register_parameter("pos_embed", torch::zeros({1, c.tokens(), c.hidden_size}), /*requires_grad=*/false);
  x_embedder = register_module("x_embedder", PatchEmbed(c.in_channels, c.hidden_size, c.patch_size));
  t_embedder = register_module("t_embedder", TimestepEmbedder(c.hidden_size));
  y_embedder = register_module("y_embedder", LabelEmbedder(c.num_classes, c.hidden_size, 0.1));
}

void DiTStemImpl::register_head() {
  final_layer = register_module("final_layer", FinalLayer(cfg_.hidden_size, cfg_.patch_size, cfg_.out_channels()));
}

void DiTStemImpl::check_inputs(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) const {
  if (x.dim() != 4 || x.size(1) != cfg_.in_channels || x.size(2) != cfg_.input_size || x.size(3) != cfg_.input_size)
    fail("model input has shape ", shape_str(x.sizes().vec()), ", expected [B, ", cfg_.in_channels, ", ",
         cfg_.input_size, ", ", cfg_.input_size, "]");
  if (t.dim() != 1 || y.dim() != 1 || t.size(0) != x.size(0) || y.size(0) != x.size(0))
    fail("timesteps and labels must be 1-D with one entry per sample");
}

std::pair<torch::Tensor, torch::Tensor> DiTStemImpl::embed(const torch::Tensor& x, const torch::Tensor& t,
                                                           const torch::Tensor& y) {
  check_inputs(x, t, y);
  auto tokens = x_embedder->forward(x) + pos_embed;
  auto c = t_embedder->forward(t) + y_embedder->forward(y);
  return {tokens, c};
}

torch::Tensor DiTStemImpl::head(const torch::Tensor& tokens, const torch::Tensor& c) {
  return unpatchify(final_layer->forward(tokens, c), cfg_.patch_size, cfg_.out_channels());
}

DiTImpl::DiTImpl(const DiTConfig& cfg) : DiTStemImpl(cfg) {
  register_stem();
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.depth; ++i) blocks->push_back(DiTBlock(cfg.hidden_size, cfg.num_heads, cfg.mlp_ratio));
  register_head();
}

torch::Tensor DiTImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
  auto [h, c] = embed(x, t, y);
  for (auto& b : *blocks) h = b->as<DiTBlockImpl>()->forward(h, c);
  return head(h, c);
}

void initialize_dit_weights(torch::nn::Module& model, const DiTConfig& cfg) {
  torch::NoGradGuard ng;
  for (auto& item : model.named_modules()) {
    if (auto* lin = item.value()->as<torch::nn::LinearImpl>()) {
      torch::nn::init::xavier_uniform_(lin->weight);
      torch::nn::init::zeros_(lin->bias);
    }
  }
  auto params = model.named_parameters();
  for (auto& p : params) {
    const auto& k = p.key();
    const bool zero_out = k.find("adaLN_modulation.1.") != std::string::npos || k.rfind("final_layer.linear.", 0) == 0;
    if (zero_out) p.value().zero_();
  }
  params["pos_embed"].copy_(sincos_pos_embed_2d(cfg.hidden_size, cfg.grid()));
  auto w = params["x_embedder.proj.weight"];
  torch::nn::init::xavier_uniform_(w.view({w.size(0), -1}));
  params["x_embedder.proj.bias"].zero_();
  torch::nn::init::normal_(params["y_embedder.embedding_table.weight"], 0.0, 0.02);
  torch::nn::init::normal_(params["t_embedder.mlp.0.weight"], 0.0, 0.02);
  torch::nn::init::normal_(params["t_embedder.mlp.2.weight"], 0.0, 0.02);
}

}  // namespace sdit

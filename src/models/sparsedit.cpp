#include "models/sparsedit.h"

#include "util/error.h"

namespace sdit {

namespace F = torch::nn::functional;

torch::Tensor pool_tokens(const torch::Tensor& tokens, int64_t grid, int64_t side) {
  if (side == grid) return tokens;
  const int64_t B = tokens.size(0), C = tokens.size(2);
  auto img = tokens.reshape({B, grid, grid, C}).permute({0, 3, 1, 2});
  return F::adaptive_avg_pool2d(img, F::AdaptiveAvgPool2dFuncOptions({side, side}))
      .permute({0, 2, 3, 1})
      .reshape({B, side * side, C});
}

torch::Tensor upsample_tokens(const torch::Tensor& tokens, int64_t side, int64_t grid) {
  if (side == grid) return tokens;
  const int64_t B = tokens.size(0), C = tokens.size(2);
  auto img = tokens.reshape({B, side, side, C}).permute({0, 3, 1, 2});
  auto up = F::interpolate(img, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{grid, grid})
                                    .mode(torch::kNearest));
  return up.permute({0, 2, 3, 1}).reshape({B, grid * grid, C});
}

PoolAttentionImpl::PoolAttentionImpl(int64_t dim) {
  v = register_module("v", torch::nn::Linear(dim, dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor PoolAttentionImpl::forward(const torch::Tensor& x) {
  return proj->forward(v->forward(x.mean(1, /*keepdim=*/true)));
}

PoolingformerBlockImpl::PoolingformerBlockImpl(int64_t hidden, double mlp_ratio) : AdaLNBlockImpl(hidden, mlp_ratio) {
  attn = register_module("attn", PoolAttention(hidden));
}

torch::Tensor PoolingformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& c) {
  auto m = modulation(c);
  return finish(x, attn->forward(modulate(layer_norm(x), m[0], m[1])), m);
}

SparseGenBlockImpl::SparseGenBlockImpl(int64_t hidden, int64_t heads, double mlp_ratio)
    : AdaLNBlockImpl(hidden, mlp_ratio) {
  attn = register_module("attn", CrossAttention(hidden, heads));
}

torch::Tensor SparseGenBlockImpl::forward(const torch::Tensor& sparse, const torch::Tensor& dense,
                                          const torch::Tensor& c) {
  auto m = modulation(c);
  auto a = attn->forward(modulate(layer_norm(sparse), m[0], m[1]), modulate(layer_norm(dense), m[0], m[1]));
  return finish(sparse, a, m);
}

RecoveryBlockImpl::RecoveryBlockImpl(int64_t hidden, int64_t heads, double mlp_ratio)
    : AdaLNBlockImpl(hidden, mlp_ratio) {
  attn = register_module("attn", CrossAttention(hidden, heads));
  merged_layer1 = register_module("merged_layer1", torch::nn::Linear(hidden, hidden));
  merged_layer2 = register_module("merged_layer2", torch::nn::Linear(hidden, hidden));
}

torch::Tensor RecoveryBlockImpl::forward(const torch::Tensor& sparse, const torch::Tensor& dense, int64_t dense_grid,
                                         const torch::Tensor& c) {
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(sparse.size(1)))));
  // W1 commutes with nearest upsampling (it only replicates tokens), so apply it to the M sparse tokens.
  auto merged = upsample_tokens(merged_layer1->forward(sparse), side, dense_grid) + merged_layer2->forward(dense);
  auto m = modulation(c);
  auto a = attn->forward(modulate(layer_norm(merged), m[0], m[1]), modulate(layer_norm(sparse), m[0], m[1]));
  return finish(merged, a, m);
}

SparseDenseTokenModuleImpl::SparseDenseTokenModuleImpl(const DiTConfig& cfg, const SparseLayout& l) {
  const auto C = cfg.hidden_size, h = cfg.num_heads;
  const auto r = cfg.mlp_ratio;
  token_merge_blocks = register_module("token_merge_blocks", torch::nn::ModuleList());
  semantic_blocks = register_module("semantic_blocks", torch::nn::ModuleList());
  token_recover_blocks = register_module("token_recover_blocks", torch::nn::ModuleList());
  normal_blocks = register_module("normal_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < l.gen; ++i) token_merge_blocks->push_back(SparseGenBlock(C, h, r));
  for (int64_t i = 0; i < l.sparse; ++i) semantic_blocks->push_back(DiTBlock(C, h, r));
  for (int64_t i = 0; i < l.recovery; ++i) token_recover_blocks->push_back(RecoveryBlock(C, h, r));
  for (int64_t i = 0; i < l.dense; ++i) normal_blocks->push_back(DiTBlock(C, h, r));
}

torch::Tensor SparseDenseTokenModuleImpl::forward(const torch::Tensor& dense, int64_t side, int64_t dense_grid,
                                                  const torch::Tensor& c) {
  auto x = pool_tokens(dense, dense_grid, side);
  for (auto& b : *token_merge_blocks) x = b->as<SparseGenBlockImpl>()->forward(x, dense, c);
  for (auto& b : *semantic_blocks) x = b->as<DiTBlockImpl>()->forward(x, c);
  for (auto& b : *token_recover_blocks) x = b->as<RecoveryBlockImpl>()->forward(x, dense, dense_grid, c);
  for (auto& b : *normal_blocks) x = b->as<DiTBlockImpl>()->forward(x, c);
  return x;
}

SparseDiTImpl::SparseDiTImpl(const DiTConfig& cfg, const SparseLayout& layout) : DiTStemImpl(cfg), layout_(layout) {
  if (layout.depth() != cfg.depth)
    fail("layout ", layout.str(), " has ", layout.depth(), " blocks, but the model has depth ", cfg.depth);
  register_stem();
  poolingformer_blocks = register_module("poolingformer_blocks", torch::nn::ModuleList());
  dumbbell_blocks = register_module("dumbbell_blocks", torch::nn::ModuleList());
  normal_blocks = register_module("normal_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < layout.poolingformers; ++i)
    poolingformer_blocks->push_back(PoolingformerBlock(cfg.hidden_size, cfg.mlp_ratio));
  for (int64_t i = 0; i < layout.sdtms; ++i) dumbbell_blocks->push_back(SparseDenseTokenModule(cfg, layout));
  for (int64_t i = 0; i < layout.top; ++i) normal_blocks->push_back(DiTBlock(cfg.hidden_size, cfg.num_heads, cfg.mlp_ratio));
  register_head();
}

torch::Tensor SparseDiTImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                                     int64_t side) {
  const int64_t grid = cfg_.grid();
  if (side < 1 || side > grid) fail("sparse grid side ", side, " is outside [1, ", grid, "]");
  auto [h, c] = embed(x, t, y);
  for (auto& b : *poolingformer_blocks) h = b->as<PoolingformerBlockImpl>()->forward(h, c);
  for (auto& b : *dumbbell_blocks) h = b->as<SparseDenseTokenModuleImpl>()->forward(h, side, grid, c);
  for (auto& b : *normal_blocks) h = b->as<DiTBlockImpl>()->forward(h, c);
  return head(h, c);
}

}  // namespace sdit

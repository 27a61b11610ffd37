#include "models/trunk.h"

#include <regex>
#include <sstream>

#include "util/error.h"

namespace sdit {

std::string SparseLayout::str() const {
  std::ostringstream os;
  os << poolingformers << ":" << sdtms << "x" << gen << "," << sparse << "," << recovery << "," << dense << ":" << top;
  return os.str();
}

SparseLayout SparseLayout::parse(const std::string& text, std::optional<int64_t> depth) {
  static const std::regex re(R"((\d{1,6}):(\d{1,6})x(\d{1,6}),(\d{1,6}),(\d{1,6}),(\d{1,6}):(\d{1,6}))");
  std::smatch m;
  if (!std::regex_match(text, m, re))
    fail("invalid layout '", text, "': expected P:SxG,N,R,D:T, e.g. 2:4x1,3,1,1:2 (P Poolingformers, S SDTMs of ",
         "G sparse-gen + N sparse + R recovery + D dense blocks, T top blocks)");
  SparseLayout l;
  l.poolingformers = std::stoll(m[1]);
  l.sdtms = std::stoll(m[2]);
  l.gen = std::stoll(m[3]);
  l.sparse = std::stoll(m[4]);
  l.recovery = std::stoll(m[5]);
  l.dense = std::stoll(m[6]);
  l.top = std::stoll(m[7]);
  if (l.sdtms < 1 || l.gen < 1 || l.recovery < 1)
    fail("invalid layout '", text, "': need at least one SDTM, each with a sparse-gen and a recovery block");
  if (depth && l.depth() != *depth)
    fail("layout ", text, " has ", l.poolingformers, " + ", l.sdtms, "x(", l.gen, "+", l.sparse, "+", l.recovery, "+",
         l.dense, ") + ", l.top, " = ", l.depth(), " blocks, but the model has depth ", *depth);
  return l;
}

SparseLayout SparseLayout::default_for_depth(int64_t depth) {
  // The paper's DiT-XL split (2 Poolingformers, 4 SDTMs, 2 top) for deep models, half of it for
  // shallow ones; blocks left over after equal SDTMs go to the top segment.
  SparseLayout l;
  l.poolingformers = l.top = depth >= 24 ? 2 : 1;
  l.sdtms = depth >= 24 ? 4 : 2;
  l.gen = l.recovery = l.dense = 1;
  const int64_t middle = depth - l.poolingformers - l.top;
  if (middle < l.sdtms * 3) l.sdtms = 1;
  if (middle < 3) fail("depth ", depth, " is too small for a SparseDiT (needs at least 5 blocks)");
  l.sparse = middle / l.sdtms - 3;
  l.top += middle % l.sdtms;
  return l;
}

std::vector<BlockSlot> block_order(int64_t depth, const SparseLayout* l) {
  std::vector<BlockSlot> out;
  auto add = [&](std::string prefix, TokenMixer mixer, bool sparse) {
    out.push_back({std::move(prefix), mixer, sparse, static_cast<int64_t>(out.size())});
  };
  if (!l) {
    for (int64_t i = 0; i < depth; ++i) add("blocks." + std::to_string(i), TokenMixer::Attention, false);
    return out;
  }
  if (l->depth() != depth) fail("layout ", l->str(), " has ", l->depth(), " blocks, but the model has depth ", depth);
  for (int64_t i = 0; i < l->poolingformers; ++i)
    add("poolingformer_blocks." + std::to_string(i), TokenMixer::Pooling, false);
  for (int64_t k = 0; k < l->sdtms; ++k) {
    const std::string d = "dumbbell_blocks." + std::to_string(k) + ".";
    for (int64_t j = 0; j < l->gen; ++j) add(d + "token_merge_blocks." + std::to_string(j), TokenMixer::SparseGen, true);
    for (int64_t j = 0; j < l->sparse; ++j) add(d + "semantic_blocks." + std::to_string(j), TokenMixer::Attention, true);
    for (int64_t j = 0; j < l->recovery; ++j)
      add(d + "token_recover_blocks." + std::to_string(j), TokenMixer::Recovery, false);
    for (int64_t j = 0; j < l->dense; ++j) add(d + "normal_blocks." + std::to_string(j), TokenMixer::Attention, false);
  }
  for (int64_t i = 0; i < l->top; ++i) add("normal_blocks." + std::to_string(i), TokenMixer::Attention, false);
  return out;
}

namespace {

torch::nn::ModuleList make_list(torch::nn::Module& owner, const std::string& name, int64_t n, TokenMixer mixer,
                                const BlockFactory& make, int64_t& index) {
  auto list = owner.register_module(name, torch::nn::ModuleList());
  for (int64_t i = 0; i < n; ++i) list->push_back(make(mixer, index++));
  return list;
}

TransformerBlockImpl& block(const std::shared_ptr<torch::nn::Module>& m) { return *m->as<TransformerBlockImpl>(); }

torch::Tensor run(const BlockHook& hook, int64_t index, const torch::Tensor& x) { return hook ? hook(index, x) : x; }

}  // namespace

SparseDenseTokenModuleImpl::SparseDenseTokenModuleImpl(const SparseLayout& l, const BlockFactory& make,
                                                       int64_t first_index)
    : first_index_(first_index) {
  int64_t i = first_index;
  token_merge_blocks = make_list(*this, "token_merge_blocks", l.gen, TokenMixer::SparseGen, make, i);
  semantic_blocks = make_list(*this, "semantic_blocks", l.sparse, TokenMixer::Attention, make, i);
  token_recover_blocks = make_list(*this, "token_recover_blocks", l.recovery, TokenMixer::Recovery, make, i);
  normal_blocks = make_list(*this, "normal_blocks", l.dense, TokenMixer::Attention, make, i);
}

torch::Tensor SparseDenseTokenModuleImpl::forward(const torch::Tensor& dense, const BlockContext& ctx,
                                                  const BlockHook& hook) {
  int64_t i = first_index_;
  auto x = pool_tokens(dense, ctx.dense, ctx.sparse);  // each SDTM pools its own input
  for (auto& b : *token_merge_blocks) x = block(b).forward_gen(run(hook, i++, x), dense, ctx);
  for (auto& b : *semantic_blocks) x = block(b).forward(run(hook, i++, x), ctx.sparse, ctx);
  for (auto& b : *token_recover_blocks) x = block(b).forward_recovery(run(hook, i++, x), dense, ctx);
  for (auto& b : *normal_blocks) x = block(b).forward(run(hook, i++, x), ctx.dense, ctx);
  return x;
}

Trunk::Trunk(torch::nn::Module& owner, int64_t depth, const std::optional<SparseLayout>& layout,
             const BlockFactory& make)
    : depth_(depth), layout_(layout) {
  int64_t i = 0;
  if (!layout) {
    blocks_ = make_list(owner, "blocks", depth, TokenMixer::Attention, make, i);
    return;
  }
  if (layout->depth() != depth)
    fail("layout ", layout->str(), " has ", layout->depth(), " blocks, but the model has depth ", depth);
  poolingformers_ = make_list(owner, "poolingformer_blocks", layout->poolingformers, TokenMixer::Pooling, make, i);
  sdtms_ = owner.register_module("dumbbell_blocks", torch::nn::ModuleList());
  for (int64_t k = 0; k < layout->sdtms; ++k) {
    sdtms_->push_back(SparseDenseTokenModule(*layout, make, i));
    i += layout->blocks_per_sdtm();
  }
  top_ = make_list(owner, "normal_blocks", layout->top, TokenMixer::Attention, make, i);
}

torch::Tensor Trunk::forward(torch::Tensor x, const BlockContext& ctx, const BlockHook& hook) const {
  int64_t i = 0;
  if (!layout_) {
    for (auto& b : *blocks_) x = block(b).forward(run(hook, i++, x), ctx.dense, ctx);
    return x;
  }
  const Grid& s = ctx.sparse;
  if (s.empty() || s.frames < 1 || s.frames > ctx.dense.frames || s.h > ctx.dense.h || s.w > ctx.dense.w)
    fail("sparse grid ", s.str(), " is outside the dense token grid ", ctx.dense.str());
  for (auto& b : *poolingformers_) x = block(b).forward(run(hook, i++, x), ctx.dense, ctx);
  for (auto& m : *sdtms_) {
    x = m->as<SparseDenseTokenModuleImpl>()->forward(x, ctx, hook);
    i += layout_->blocks_per_sdtm();
  }
  for (auto& b : *top_) x = block(b).forward(run(hook, i++, x), ctx.dense, ctx);
  return x;
}

void init_transformer_weights(torch::nn::Module& model, const std::function<bool(const std::string&)>& zeroed) {
  torch::NoGradGuard ng;
  for (auto& item : model.named_modules()) {
    if (auto* lin = item.value()->as<torch::nn::LinearImpl>()) {
      torch::nn::init::xavier_uniform_(lin->weight);
      torch::nn::init::zeros_(lin->bias);
    }
  }
  for (auto& p : model.named_parameters()) {
    const auto& k = p.key();
    auto v = p.value();
    if (zeroed(k)) v.zero_();
    if (k.find("merged_layer1.") != std::string::npos || k.find("merged_layer2.bias") != std::string::npos) v.zero_();
    if (k.find("merged_layer2.weight") != std::string::npos) v.copy_(torch::eye(v.size(0), v.size(1), v.options()));
    if (k == "x_embedder.proj.weight") torch::nn::init::xavier_uniform_(v.view({v.size(0), -1}));
    if (k == "x_embedder.proj.bias") v.zero_();
  }
}

}  // namespace sdit

#include "models/t5.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace sdit {
namespace {

using json = nlohmann::json;

// Sizes beyond these only come from corrupt or hostile config files (XXL: d_model 4096, d_ff 10240).
constexpr int64_t kMaxDim = int64_t(1) << 20;

const char* const kActivations[] = {"gelu_new", "gelu", "gelu_pytorch_tanh", "relu", "silu", "swish"};

int64_t get_int(const json& j, const char* key, int64_t fallback, const std::string& source, int64_t min_value) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) fail(source, ": \"", key, "\" must be an integer, got ", it->dump());
  const int64_t v = it->get<int64_t>();
  if (v < min_value || v > kMaxDim) fail(source, ": \"", key, "\" = ", v, " is out of range [", min_value, ", ", kMaxDim, "]");
  return v;
}

}  // namespace

int64_t T5Config::num_parameters() const {
  const int64_t attn = 4 * d_model * inner_dim();
  const int64_t ff = (is_gated_act ? 3 : 2) * d_model * d_ff;
  return vocab_size * d_model + num_layers * (attn + ff + 2 * d_model) + relative_attention_num_buckets * num_heads +
         d_model;
}

T5Config T5Config::v1_1_xxl() { return T5Config{}; }

T5Config T5Config::from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, " is not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(source, " is not a JSON object");
  T5Config c;
  c.vocab_size = get_int(j, "vocab_size", c.vocab_size, source, 1);
  c.d_model = get_int(j, "d_model", c.d_model, source, 1);
  c.d_kv = get_int(j, "d_kv", c.d_kv, source, 1);
  c.num_heads = get_int(j, "num_heads", c.num_heads, source, 1);
  c.d_ff = get_int(j, "d_ff", c.d_ff, source, 1);
  c.num_layers = get_int(j, "num_layers", c.num_layers, source, 1);
  c.relative_attention_num_buckets = get_int(j, "relative_attention_num_buckets", c.relative_attention_num_buckets, source, 4);
  c.relative_attention_max_distance =
      get_int(j, "relative_attention_max_distance", c.relative_attention_max_distance, source, 1);
  // The bucket formula divides by log(max_distance / max_exact): it must be positive.
  if (c.relative_attention_max_distance <= c.relative_attention_num_buckets / 4)
    fail(source, ": relative_attention_max_distance ", c.relative_attention_max_distance,
         " must exceed relative_attention_num_buckets / 4 = ", c.relative_attention_num_buckets / 4);
  if (auto it = j.find("layer_norm_epsilon"); it != j.end() && !it->is_null()) {
    if (!it->is_number() || !(it->get<double>() >= 0.0) || !std::isfinite(it->get<double>()))
      fail(source, ": \"layer_norm_epsilon\" must be a non-negative number, got ", it->dump());
    c.layer_norm_epsilon = it->get<double>();
  }
  if (auto it = j.find("model_type"); it != j.end() && it->is_string() && it->get<std::string>() != "t5")
    fail(source, ": model_type is \"", it->get<std::string>(), "\", not \"t5\"");

  // T5Config.__init__: "gated-X" => X gated, "X" => X; "gated-gelu" => gelu_new (backward compatibility).
  if (auto it = j.find("feed_forward_proj"); it != j.end()) {
    if (!it->is_string()) fail(source, ": \"feed_forward_proj\" must be a string");
    c.feed_forward_proj = it->get<std::string>();
  }
  const std::string& ffp = c.feed_forward_proj;
  const size_t dash = ffp.find('-');
  if (dash == std::string::npos) {
    c.dense_act_fn = ffp;
    c.is_gated_act = false;
  } else if (ffp.compare(0, dash, "gated") == 0 && ffp.find('-', dash + 1) == std::string::npos) {
    c.dense_act_fn = ffp.substr(dash + 1);
    c.is_gated_act = true;
  } else {
    fail(source, ": feed_forward_proj \"", ffp, "\" is not of the form \"ACT\" or \"gated-ACT\"");
  }
  if (ffp == "gated-gelu") c.dense_act_fn = "gelu_new";
  // PretrainedConfig then sets every remaining key as an attribute, so saved values win.
  if (auto it = j.find("dense_act_fn"); it != j.end() && it->is_string()) c.dense_act_fn = it->get<std::string>();
  if (auto it = j.find("is_gated_act"); it != j.end() && it->is_boolean()) c.is_gated_act = it->get<bool>();
  bool known = false;
  for (const char* a : kActivations) known = known || c.dense_act_fn == a;
  if (!known) fail(source, ": activation \"", c.dense_act_fn, "\" is not supported (gelu_new, gelu, relu, silu)");
  if (c.num_parameters() <= 0 || c.num_parameters() > (int64_t(1) << 38))
    fail(source, ": the sizes give an implausible parameter count");
  return c;
}

int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets,
                                    int64_t max_distance) {
  int64_t out = 0, rel = relative_position;
  if (bidirectional) {
    num_buckets /= 2;
    if (rel > 0) out += num_buckets;  // strictly positive: distance 0 stays in the lower half
    rel = rel < 0 ? -rel : rel;
  } else {
    rel = rel < 0 ? -rel : 0;
  }
  const int64_t max_exact = num_buckets / 2;
  if (rel < max_exact) return out + rel;  // also where HF computes (and discards) log(0)
  // float32, in torch's order: rel.float() / max_exact, log, / log(max_distance / max_exact) (a
  // Python double, rounded to float by the tensor op), * (num_buckets - max_exact), truncation.
  const float ratio = static_cast<float>(rel) / static_cast<float>(max_exact);
  const float scale = static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  float v = std::log(ratio) / scale * static_cast<float>(num_buckets - max_exact);
  v = std::min(v, static_cast<float>(num_buckets));  // bounded before the cast (the clamp below wins anyway)
  const int64_t large = max_exact + static_cast<int64_t>(v);
  return out + std::min(large, num_buckets - 1);
}

torch::Tensor t5_extended_attention_mask(const torch::Tensor& mask, torch::Dtype dtype) {
  double lowest = 0.0;
  switch (dtype) {
    case torch::kFloat: lowest = std::numeric_limits<float>::lowest(); break;
    case torch::kDouble: lowest = std::numeric_limits<double>::lowest(); break;
    case torch::kBFloat16: lowest = static_cast<float>(std::numeric_limits<c10::BFloat16>::lowest()); break;
    case torch::kHalf: lowest = static_cast<float>(std::numeric_limits<c10::Half>::lowest()); break;
    default: fail("T5: unsupported activation dtype ", c10::toString(dtype));
  }
  auto e = mask.index({torch::indexing::Slice(), torch::indexing::None, torch::indexing::None, torch::indexing::Slice()})
               .to(dtype);
  return (1.0 - e) * lowest;
}

torch::Tensor t5_layer_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto variance = x.to(torch::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  auto h = x * torch::rsqrt(variance + eps);
  if (weight.scalar_type() == torch::kHalf || weight.scalar_type() == torch::kBFloat16) h = h.to(weight.scalar_type());
  return weight * h;
}

torch::Tensor t5_activation(const torch::Tensor& x, const std::string& name) {
  if (name == "gelu_new")  // HF's NewGELUActivation, op by op (each op rounds in bf16 as HF's does)
    return 0.5 * x * (1.0 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * torch::pow(x, 3.0))));
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  if (name == "silu" || name == "swish") return torch::silu(x);
  fail("T5: unsupported activation '", name, "'");
}

T5WeightImpl::T5WeightImpl(std::vector<int64_t> shape, const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty(shape, options), /*requires_grad=*/false);
}

T5AttentionImpl::T5AttentionImpl(const T5Config& c, bool has_bias, const torch::TensorOptions& options)
    : heads_(c.num_heads), d_kv_(c.d_kv), num_buckets_(c.relative_attention_num_buckets),
      max_distance_(c.relative_attention_max_distance) {
  const int64_t inner = c.inner_dim();
  q = register_module("q", T5Weight(std::vector<int64_t>{inner, c.d_model}, options));
  k = register_module("k", T5Weight(std::vector<int64_t>{inner, c.d_model}, options));
  v = register_module("v", T5Weight(std::vector<int64_t>{inner, c.d_model}, options));
  o = register_module("o", T5Weight(std::vector<int64_t>{c.d_model, inner}, options));
  if (has_bias)
    relative_attention_bias = register_module(
        "relative_attention_bias", T5Weight(std::vector<int64_t>{c.relative_attention_num_buckets, c.num_heads}, options));
}

torch::Tensor T5AttentionImpl::compute_bias(int64_t query_length, int64_t key_length) const {
  if (!relative_attention_bias) fail("T5: compute_bias on a block without relative_attention_bias");
  // The bias depends on key − query only: one bucket per distance, then a (Lq, Lk) index into it.
  const int64_t lo = -(query_length - 1), n = query_length + key_length - 1;
  std::vector<int64_t> table(n);
  for (int64_t d = 0; d < n; ++d) table[d] = t5_relative_position_bucket(lo + d, true, num_buckets_, max_distance_);
  auto buckets_by_distance = torch::tensor(table, torch::kLong);
  auto qpos = torch::arange(query_length, torch::kLong).unsqueeze(1);
  auto kpos = torch::arange(key_length, torch::kLong).unsqueeze(0);
  auto buckets = buckets_by_distance.index({kpos - qpos - lo}).to(relative_attention_bias->weight.device());
  auto values = torch::embedding(relative_attention_bias->weight, buckets);  // (Lq, Lk, H)
  return values.permute({2, 0, 1}).unsqueeze(0);
}

torch::Tensor T5AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& position_bias, torch::Tensor* probs) {
  const int64_t B = x.size(0);
  auto shape = [&](const torch::Tensor& t) { return t.view({B, -1, heads_, d_kv_}).transpose(1, 2); };
  auto qs = shape(torch::linear(x, q->weight));
  auto ks = shape(torch::linear(x, k->weight));
  auto vs = shape(torch::linear(x, v->weight));
  auto scores = torch::matmul(qs, ks.transpose(3, 2));  // no 1/sqrt(d_kv): folded into the weights
  scores += position_bias;
  auto p = torch::softmax(scores.to(torch::kFloat), -1).to(scores.scalar_type());
  if (probs) *probs = p;
  auto out = torch::matmul(p, vs).transpose(1, 2).contiguous().view({B, -1, heads_ * d_kv_});
  return torch::linear(out, o->weight);
}

T5LayerSelfAttentionImpl::T5LayerSelfAttentionImpl(const T5Config& c, bool has_bias, const torch::TensorOptions& options)
    : eps_(c.layer_norm_epsilon) {
  SelfAttention = register_module("SelfAttention", T5Attention(c, has_bias, options));
  layer_norm = register_module("layer_norm", T5Weight(std::vector<int64_t>{c.d_model}, options));
}

torch::Tensor T5LayerSelfAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& position_bias,
                                                torch::Tensor* probs) {
  return h + SelfAttention->forward(t5_layer_norm(h, layer_norm->weight, eps_), position_bias, probs);
}

T5LayerFFImpl::T5LayerFFImpl(const T5Config& c, const torch::TensorOptions& options)
    : eps_(c.layer_norm_epsilon), act_(c.dense_act_fn), gated_(c.is_gated_act) {
  auto d = register_module("DenseReluDense", std::make_shared<torch::nn::Module>());
  const std::vector<int64_t> in{c.d_ff, c.d_model}, out{c.d_model, c.d_ff};
  if (gated_) {
    wi_0 = d->register_module("wi_0", T5Weight(in, options));
    wi_1 = d->register_module("wi_1", T5Weight(in, options));
  } else {
    wi = d->register_module("wi", T5Weight(in, options));
  }
  wo = d->register_module("wo", T5Weight(out, options));
  layer_norm = register_module("layer_norm", T5Weight(std::vector<int64_t>{c.d_model}, options));
}

torch::Tensor T5LayerFFImpl::forward(const torch::Tensor& h) {
  auto f = t5_layer_norm(h, layer_norm->weight, eps_);
  torch::Tensor g = gated_ ? t5_activation(torch::linear(f, wi_0->weight), act_) * torch::linear(f, wi_1->weight)
                           : t5_activation(torch::linear(f, wi->weight), act_);
  if (g.scalar_type() != wo->weight.scalar_type()) g = g.to(wo->weight.scalar_type());
  return h + torch::linear(g, wo->weight);
}

T5BlockImpl::T5BlockImpl(const T5Config& c, bool has_bias, const torch::TensorOptions& options) {
  attention = T5LayerSelfAttention(c, has_bias, options);
  ff = T5LayerFF(c, options);
  register_module("layer", torch::nn::ModuleList(attention, ff));
}

T5EncoderModelImpl::T5EncoderModelImpl(const T5Config& c, const torch::TensorOptions& options) : config_(c) {
  const auto opts = options.requires_grad(false);
  shared = register_module("shared", T5Weight(std::vector<int64_t>{c.vocab_size, c.d_model}, opts));
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  torch::nn::ModuleList list;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    blocks.push_back(T5Block(c, /*has_relative_attention_bias=*/i == 0, opts));
    list->push_back(blocks.back());
  }
  encoder->register_module("block", list);
  final_layer_norm = encoder->register_module("final_layer_norm", T5Weight(std::vector<int64_t>{c.d_model}, opts));
}

torch::Tensor T5EncoderModelImpl::forward(const torch::Tensor& ids, const torch::Tensor& mask_in, T5Trace* trace) {
  if (ids.dim() != 2 || ids.scalar_type() != torch::kLong)
    fail("T5 encoder: input ids must be an int64 tensor of shape (batch, length), got ", c10::toString(ids.scalar_type()),
         " ", shape_str(ids.sizes().vec()));
  if (ids.numel() > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size)
      fail("T5 encoder: token id ", lo < 0 ? lo : hi, " is outside the embedding table (", config_.vocab_size, " rows)");
  }
  if (ids.size(1) == 0) fail("T5 encoder: the sequences are empty (length 0)");
  torch::Tensor mask = mask_in.defined() ? mask_in : torch::ones_like(ids);
  if (!mask.sizes().equals(ids.sizes()))
    fail("T5 encoder: attention mask ", shape_str(mask.sizes().vec()), " does not match the ids ",
         shape_str(ids.sizes().vec()));
  const auto device = shared->weight.device();
  const auto dt = dtype();
  const int64_t L = ids.size(1);

  auto h = torch::embedding(shared->weight, ids.to(device));  // no sqrt(d_model) scaling, no positions
  auto extended = t5_extended_attention_mask(mask.to(device), dt);
  auto bias = blocks.front()->attention->SelfAttention->compute_bias(L, L);
  auto bias_plus_mask = bias + extended;  // block 0's position_bias, reused as is by every block
  if (trace) {
    *trace = T5Trace{};
    trace->embed = h;
    trace->extended_mask = extended;
    trace->position_bias = bias;
    trace->position_bias_plus_mask = bias_plus_mask;
  }
  for (auto& block : blocks) {
    torch::Tensor probs;
    h = block->attention->forward(h, bias_plus_mask, trace ? &probs : nullptr);
    if (trace) {
      trace->attentions.push_back(probs);
      trace->after_attn.push_back(h);
    }
    h = block->ff->forward(h);
    if (trace) trace->after_ff.push_back(h);
  }
  return t5_layer_norm(h, final_layer_norm->weight, config_.layer_norm_epsilon);
}

void t5_fill_random(T5EncoderModel& model, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(seed);
  constexpr int64_t kBlock = int64_t(1) << 20;
  for (auto& p : model->named_parameters()) {
    torch::Tensor w = p.value();
    if (w.dim() == 1) {
      w.fill_(1.0);  // RMS norm weights
      continue;
    }
    const double std = 1.0 / std::sqrt(static_cast<double>(w.size(1)));
    auto block = torch::randn({std::min<int64_t>(kBlock, w.numel())}, gen, torch::kFloat) * std;
    block = block.to(w.device(), w.scalar_type());
    auto flat = w.view({-1});
    for (int64_t off = 0; off < flat.numel(); off += block.numel()) {
      const int64_t n = std::min<int64_t>(block.numel(), flat.numel() - off);
      flat.narrow(0, off, n).copy_(block.narrow(0, 0, n));
    }
  }
}

}  // namespace sdit

#pragma once
// The T5 v1.1 encoder (HF transformers' T5EncoderModel), as PixArt-α's text encoder runs it:
// pre-norm blocks of RMS-normed self-attention without 1/√d scaling, a bucketed relative position
// bias that block 0 computes (plus the additive mask) and every block reuses, a gated-GELU
// feed-forward, no biases anywhere, a final RMS norm. Module names are HF's state-dict names
// (shared.weight, encoder.block.{i}.layer.{0,1}..., encoder.final_layer_norm.weight).
// Numerics follow HF op by op (../shared/T5.md §2-§3): RMS statistics and softmax in float32, the
// mask value finfo(dtype).min (never -inf, so a fully masked row stays finite).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sdit {

struct T5Config {
  int64_t vocab_size = 32128;  // embedding rows (the tokenizer may use fewer)
  int64_t d_model = 4096;
  int64_t d_kv = 64;
  int64_t num_heads = 64;
  int64_t d_ff = 10240;
  int64_t num_layers = 24;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double layer_norm_epsilon = 1e-6;
  std::string feed_forward_proj = "gated-gelu";
  std::string dense_act_fn = "gelu_new";  // derived from feed_forward_proj ("gated-gelu" => gelu_new)
  bool is_gated_act = true;

  int64_t inner_dim() const { return num_heads * d_kv; }
  int64_t num_parameters() const;  // of the encoder (shared embedding included)

  // HF's config.json (T5Config semantics: feed_forward_proj "gated-X"/"X", then any saved
  // dense_act_fn / is_gated_act override it, as PretrainedConfig does). `source` names it in errors.
  static T5Config from_json(const std::string& text, const std::string& source);
  static T5Config v1_1_xxl();  // google/t5-v1_1-xxl, DeepFloyd/t5-v1_1-xxl, PixArt's text_encoder
};

// T5Attention._relative_position_bucket for one relative position (key - query), evaluated in
// float32 in torch's order; bidirectional for the encoder.
int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets,
                                    int64_t max_distance);

// (1 - mask[:, None, None, :]) * finfo(dtype).min in `dtype`: -0.0 where mask is 1.
torch::Tensor t5_extended_attention_mask(const torch::Tensor& mask, torch::Dtype dtype);

// T5LayerNorm: x * rsqrt(mean(x²) + eps) with the statistics in float32, cast back to the weight's
// dtype when that is half/bfloat16, then times the weight.
torch::Tensor t5_layer_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// HF activations by name: gelu_new (tanh approximation, op by op), gelu, gelu_pytorch_tanh, relu, silu.
torch::Tensor t5_activation(const torch::Tensor& x, const std::string& name);

// A module holding one parameter named "weight", created uninitialised (so a 4.76 B-parameter model
// costs nothing until its weights are loaded): what HF's bias-free Linear, Embedding and T5LayerNorm hold.
class T5WeightImpl : public torch::nn::Module {
 public:
  T5WeightImpl(std::vector<int64_t> shape, const torch::TensorOptions& options);
  torch::Tensor weight;
};
TORCH_MODULE(T5Weight);

// Intermediate values of one forward, for tests and debugging (filled when passed to forward).
struct T5Trace {
  torch::Tensor embed;                        // embedding lookup
  torch::Tensor extended_mask;                // (B, 1, 1, L)
  torch::Tensor position_bias;                // block 0's compute_bias, (1, H, L, L)
  torch::Tensor position_bias_plus_mask;      // what every block adds to its scores, (B, H, L, L)
  std::vector<torch::Tensor> after_attn, after_ff, attentions;  // per block
};

class T5AttentionImpl : public torch::nn::Module {
 public:
  T5AttentionImpl(const T5Config& c, bool has_relative_attention_bias, const torch::TensorOptions& options);
  // (1, H, Lq, Lk) bias of key − query distances from relative_attention_bias (block 0 only).
  torch::Tensor compute_bias(int64_t query_length, int64_t key_length) const;
  // position_bias already holds the mask; probs (optional) receives the softmax probabilities.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& position_bias, torch::Tensor* probs = nullptr);
  T5Weight q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr}, relative_attention_bias{nullptr};

 private:
  int64_t heads_, d_kv_, num_buckets_, max_distance_;
};
TORCH_MODULE(T5Attention);

class T5LayerSelfAttentionImpl : public torch::nn::Module {
 public:
  T5LayerSelfAttentionImpl(const T5Config& c, bool has_relative_attention_bias, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& position_bias, torch::Tensor* probs);
  T5Attention SelfAttention{nullptr};
  T5Weight layer_norm{nullptr};

 private:
  double eps_;
};
TORCH_MODULE(T5LayerSelfAttention);

// T5LayerFF with DenseReluDense = T5DenseGatedActDense (wi_0, wi_1, wo) or T5DenseActDense (wi, wo).
class T5LayerFFImpl : public torch::nn::Module {
 public:
  T5LayerFFImpl(const T5Config& c, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& h);
  // DenseReluDense.{wi_0, wi_1, wo} (gated) or DenseReluDense.{wi, wo}; layer_norm.
  T5Weight wi{nullptr}, wi_0{nullptr}, wi_1{nullptr}, wo{nullptr}, layer_norm{nullptr};

 private:
  double eps_;
  std::string act_;
  bool gated_;
};
TORCH_MODULE(T5LayerFF);

class T5BlockImpl : public torch::nn::Module {
 public:
  T5BlockImpl(const T5Config& c, bool has_relative_attention_bias, const torch::TensorOptions& options);
  T5LayerSelfAttention attention{nullptr};  // "layer.0"
  T5LayerFF ff{nullptr};                    // "layer.1"
};
TORCH_MODULE(T5Block);

class T5EncoderModelImpl : public torch::nn::Module {
 public:
  // Parameters are allocated uninitialised in options' dtype/device: load weights (models/t5_load.h)
  // or fill them (t5_fill_random) before running.
  explicit T5EncoderModelImpl(const T5Config& c, const torch::TensorOptions& options = {});
  // ids (B, L) int64, mask (B, L) 1 = token / 0 = padding (undefined = all ones). Returns
  // last_hidden_state (B, L, d_model) in the parameters' dtype, every position included.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask = {}, T5Trace* trace = nullptr);
  const T5Config& config() const { return config_; }
  torch::Dtype dtype() const { return shared->weight.scalar_type(); }

  T5Weight shared{nullptr};                 // "shared" (HF's encoder.embed_tokens is the same module)
  std::vector<T5Block> blocks;              // "encoder.block.{i}"
  T5Weight final_layer_norm{nullptr};       // "encoder.final_layer_norm"

 private:
  T5Config config_;
};
TORCH_MODULE(T5EncoderModel);

// Random weights for timing (bench): a cheap fill, in place, in the parameters' own dtype: norms 1,
// the rest N(0, 1/fan_in) tiled from one small block of draws (the values do not change the cost).
void t5_fill_random(T5EncoderModel& model, uint64_t seed);

}  // namespace sdit

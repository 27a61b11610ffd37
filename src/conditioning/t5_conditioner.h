#pragma once
// Prompts -> T5 features, the way PixArt-α's pipelines call T5 (PixArt's encode_prompt):
// caption preprocessing, tokenizer(padding="max_length", max_length=120, truncation=True),
// text_encoder(ids, attention_mask)[0]. Free of any image-model specifics: a DiT that conditions on
// text takes `last_hidden_state` and `attention_mask`.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "conditioning/caption.h"
#include "conditioning/t5_tokenizer.h"
#include "models/t5_load.h"

namespace sdit {

struct TextEncoding {
  torch::Tensor input_ids;          // (n, max_length) int64
  torch::Tensor attention_mask;     // (n, max_length) int64, 1 = token (EOS included)
  torch::Tensor last_hidden_state;  // (n, max_length, d_model) float32, padding positions included
};

// (done, total) after each batch of prompts.
using EncodeProgress = std::function<void(int64_t, int64_t)>;

// Cleans and tokenizes: fills input_ids and attention_mask (last_hidden_state left undefined).
TextEncoding tokenize_prompts(const T5Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                              int64_t max_length = 120, CaptionCleaning cleaning = CaptionCleaning::Basic);

// The whole path. batch_size <= 0: all prompts in one forward. The features are returned as
// float32 on the CPU whatever the encoder's dtype/device (HF would return its dtype; a bf16
// value is exact in float32).
TextEncoding encode_text(T5EncoderModel& encoder, const T5Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                         int64_t max_length = 120, CaptionCleaning cleaning = CaptionCleaning::Basic,
                         int64_t batch_size = 0, const EncodeProgress& progress = {});

// Where the encoder and tokenizer live. `text_encoder` is a T5 folder (config.json + weights) or a
// diffusers pipeline folder (text_encoder/ and tokenizer/ inside). `tokenizer` empty: the
// pipeline's tokenizer/, else the text-encoder folder itself when it holds spiece.model (the
// layout of DeepFloyd/t5-v1_1-xxl). Throws sdit::Error saying what is missing.
struct T5Paths {
  std::string text_encoder, tokenizer;
};
T5Paths resolve_t5_paths(const std::string& text_encoder, const std::string& tokenizer = "");

// Tokenizer + encoder, loaded together; release() frees the encoder's weights (e.g. the 9.5 GB of
// a bf16 XXL before a transformer is loaded) and keeps the tokenizer.
class T5Conditioner {
 public:
  T5Conditioner(const std::string& text_encoder, const std::string& tokenizer = "", const T5LoadOptions& options = {});
  TextEncoding encode(const std::vector<std::string>& prompts, int64_t max_length = 120,
                      CaptionCleaning cleaning = CaptionCleaning::Basic, int64_t batch_size = 0,
                      const EncodeProgress& progress = {});
  void release();
  bool loaded() const { return static_cast<bool>(encoder_); }
  const T5Tokenizer& tokenizer() const { return *tokenizer_; }
  T5EncoderModel& encoder();  // throws after release()
  const T5Paths& paths() const { return paths_; }
  const T5LoadInfo& load_info() const { return info_; }

 private:
  T5Paths paths_;
  std::shared_ptr<T5Tokenizer> tokenizer_;
  T5EncoderModel encoder_{nullptr};
  T5LoadInfo info_;
};

}  // namespace sdit

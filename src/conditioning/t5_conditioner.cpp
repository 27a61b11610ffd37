#include "conditioning/t5_conditioner.h"

#include <filesystem>

#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;

bool has(const std::string& dir, const char* file) { return fs::exists(fs::path(dir) / file); }

}  // namespace

TextEncoding tokenize_prompts(const T5Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                              int64_t max_length, CaptionCleaning cleaning) {
  if (max_length <= 0) fail("max_length must be at least 1, got ", max_length);
  const int64_t n = static_cast<int64_t>(prompts.size());
  TextEncoding out;
  out.input_ids = torch::empty({n, max_length}, torch::kLong);
  out.attention_mask = torch::empty({n, max_length}, torch::kLong);
  auto ids = out.input_ids.accessor<int64_t, 2>();
  auto mask = out.attention_mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    T5TokenizedText t;
    try {
      t = tokenizer.encode(clean_caption(prompts[i], cleaning), max_length);
    } catch (const Error& e) {
      fail("prompt ", i + 1, ": ", e.what());
    }
    for (int64_t j = 0; j < max_length; ++j) {
      ids[i][j] = t.ids[j];
      mask[i][j] = t.mask[j];
    }
  }
  return out;
}

TextEncoding encode_text(T5EncoderModel& encoder, const T5Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                         int64_t max_length, CaptionCleaning cleaning, int64_t batch_size,
                         const EncodeProgress& progress) {
  TextEncoding out = tokenize_prompts(tokenizer, prompts, max_length, cleaning);
  const int64_t n = out.input_ids.size(0);
  const int64_t step = batch_size > 0 ? batch_size : std::max<int64_t>(n, 1);
  std::vector<torch::Tensor> parts;
  torch::NoGradGuard ng;
  for (int64_t b = 0; b < n; b += step) {
    const int64_t len = std::min(step, n - b);
    auto h = encoder->forward(out.input_ids.narrow(0, b, len), out.attention_mask.narrow(0, b, len));
    parts.push_back(h.to(torch::kCPU, torch::kFloat));
    if (progress) progress(b + len, n);
  }
  out.last_hidden_state = parts.empty() ? torch::empty({0, max_length, encoder->config().d_model}, torch::kFloat)
                                        : torch::cat(parts, 0);
  return out;
}

T5Paths resolve_t5_paths(const std::string& text_encoder, const std::string& tokenizer) {
  if (!fs::is_directory(text_encoder)) fail("text encoder '", text_encoder, "' is not a folder");
  T5Paths p{text_encoder, tokenizer};
  const std::string sub = (fs::path(text_encoder) / "text_encoder").string();
  const bool pipeline = !has(text_encoder, "config.json") && has(sub, "config.json");
  if (pipeline) p.text_encoder = sub;
  else if (!has(text_encoder, "config.json"))
    fail("'", text_encoder, "' holds neither config.json (a T5 folder) nor text_encoder/config.json (a pipeline)");
  if (p.tokenizer.empty()) {
    const std::string pipe_tok = (fs::path(text_encoder) / "tokenizer").string();
    if (pipeline && has(pipe_tok, "spiece.model")) p.tokenizer = pipe_tok;
    else if (has(p.text_encoder, "spiece.model")) p.tokenizer = p.text_encoder;
    else fail("no tokenizer found next to '", text_encoder, "' (no tokenizer/spiece.model): pass --tokenizer DIR");
  }
  if (!fs::is_directory(p.tokenizer)) fail("tokenizer '", p.tokenizer, "' is not a folder");
  return p;
}

T5Conditioner::T5Conditioner(const std::string& text_encoder, const std::string& tokenizer, const T5LoadOptions& options)
    : paths_(resolve_t5_paths(text_encoder, tokenizer)) {
  tokenizer_ = std::make_shared<T5Tokenizer>(T5Tokenizer::load(paths_.tokenizer));
  encoder_ = load_t5_encoder(paths_.text_encoder, options, &info_);
  if (tokenizer_->vocab_size() > encoder_->config().vocab_size)
    fail("tokenizer '", paths_.tokenizer, "' has ", tokenizer_->vocab_size(), " ids but the text encoder's embedding has ",
         encoder_->config().vocab_size, " rows: they do not belong together");
}

TextEncoding T5Conditioner::encode(const std::vector<std::string>& prompts, int64_t max_length,
                                   CaptionCleaning cleaning, int64_t batch_size, const EncodeProgress& progress) {
  return encode_text(encoder(), *tokenizer_, prompts, max_length, cleaning, batch_size, progress);
}

void T5Conditioner::release() { encoder_ = T5EncoderModel(nullptr); }

T5EncoderModel& T5Conditioner::encoder() {
  if (!encoder_) fail("the T5 text encoder was released; load it again to encode prompts");
  return encoder_;
}

}  // namespace sdit

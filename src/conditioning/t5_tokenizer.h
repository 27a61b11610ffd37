#pragma once
// HF transformers' slow T5Tokenizer (legacy=True, the behaviour of v4.31 that the goldens and
// PixArt use), on Debian's libsentencepiece:
//  1. special-token literals (</s>, <unk>, <pad>, <extra_id_N>, added tokens) are split out of the
//     raw text first (longest match, case-sensitive) and the text around each is stripped;
//  2. every other chunk goes through SentencePiece (its nmt_nfkc normaliser, dummy prefix, one
//     piece per run of unknown characters), pieces -> ids; <extra_id_N> = vocab_size - 1 - N;
//  3. EOS is appended unless the ids already end with it; with a max_length, the ids are first
//     cut to max_length - 1 when ids + EOS would not fit (so EOS is always kept);
//  4. padding on the right with the pad id; attention mask 1 for every real id (EOS included).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sdit {

class SentencePiece;

// What tokenizer_config.json / special_tokens_map.json / added_tokens.json say (defaults: T5's).
struct T5TokenizerSettings {
  std::string eos_token = "</s>", unk_token = "<unk>", pad_token = "<pad>";
  int64_t extra_ids = 100;
  std::vector<std::string> additional_special_tokens;  // empty: <extra_id_0> ... <extra_id_{extra_ids-1}>
  std::map<std::string, int64_t> added_tokens;          // added_tokens.json / added_tokens_decoder
  bool legacy = true;                                   // absent in old configs => true, as HF does
};

struct T5TokenizedText {
  std::vector<int64_t> ids;   // max_length entries (padded), or the unpadded ids + EOS without max_length
  std::vector<int64_t> mask;  // 1 for real ids, 0 for padding
  int64_t untruncated = 0;    // ids + EOS before truncation (HF's len(tokenizer(text).input_ids))
};

class T5Tokenizer {
 public:
  // A folder with spiece.model and (optionally) tokenizer_config.json, special_tokens_map.json,
  // added_tokens.json. Throws sdit::Error for a missing, corrupt or hostile spiece.model.
  static T5Tokenizer load(const std::string& folder);
  // The serialized SentencePiece model itself (tests, fuzzing); `what` names it in errors.
  static T5Tokenizer from_model_bytes(std::string_view spiece_model, const T5TokenizerSettings& settings = {},
                                      const std::string& what = "SentencePiece model");

  // tokenizer.tokenize(text) converted to ids: no EOS, no truncation. Text must be valid UTF-8.
  std::vector<int64_t> ids_without_eos(const std::string& text) const;
  // tokenizer(text, padding="max_length", max_length, truncation=True): max_length > 0. With
  // max_length 0: tokenizer(text) (ids + EOS, unpadded).
  T5TokenizedText encode(const std::string& text, int64_t max_length = 0) const;

  int64_t vocab_size() const { return piece_size_ + settings_.extra_ids; }  // HF's vocab_size
  int64_t pad_id() const { return pad_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  const T5TokenizerSettings& settings() const { return settings_; }
  // Id of one token string as HF's convert_tokens_to_ids: added tokens, <extra_id_N>, then the piece.
  int64_t token_to_id(const std::string& token) const;

 private:
  T5Tokenizer() = default;
  void init(const std::string& what);
  std::vector<std::string> split_special(const std::string& text, std::vector<bool>& is_special) const;

  std::shared_ptr<const SentencePiece> sp_;
  T5TokenizerSettings settings_;
  std::vector<std::string> specials_;  // the no-split tokens
  int64_t piece_size_ = 0, pad_id_ = 0, eos_id_ = 1, unk_id_ = 2;
};

// Reads tokenizer_config.json, special_tokens_map.json and added_tokens.json of `folder` (each
// optional). Exposed for tests.
T5TokenizerSettings read_t5_tokenizer_settings(const std::string& folder);

}  // namespace sdit

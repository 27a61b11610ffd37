#include "conditioning/t5_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "conditioning/python_text.h"
#include "conditioning/sentencepiece.h"
#include "io/file_util.h"
#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// T5's spiece.model is 792 kB; multilingual SentencePiece models reach a few MB.
constexpr uint64_t kMaxModelBytes = 256ull << 20;
constexpr uint64_t kMaxJsonBytes = 16ull << 20;
constexpr const char* kExtraPrefix = "<extra_id_";

std::string read_small_file(const std::string& path, uint64_t limit, const char* what) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) fail("cannot read ", what, " '", path, "': ", ec.message());
  if (size > limit) fail(what, " '", path, "' is ", size, " bytes, implausibly large");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open ", what, " '", path, "'");
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

std::optional<json> read_json_object(const std::string& path) {
  if (!fs::exists(path)) return std::nullopt;
  json j;
  try {
    j = json::parse(read_small_file(path, kMaxJsonBytes, "tokenizer file"));
  } catch (const json::exception& e) {
    fail("'", path, "' is not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail("'", path, "' is not a JSON object");
  return j;
}

// A token is saved either as a string or as an AddedToken dict {"content": ..., ...}.
std::string token_content(const json& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) {
    auto c = v.find("content");
    if (c != v.end() && c->is_string()) return c->get<std::string>();
  }
  fail(where, " is neither a string nor a token object with a \"content\" string");
}

// The keys special_tokens_map.json and tokenizer_config.json share.
void apply_special_tokens(const json& j, const std::string& path, T5TokenizerSettings& s) {
  auto str = [&](const char* key, std::string& dst) {
    auto it = j.find(key);
    if (it != j.end() && !it->is_null()) dst = token_content(*it, "'" + path + "': \"" + key + "\"");
  };
  str("eos_token", s.eos_token);
  str("unk_token", s.unk_token);
  str("pad_token", s.pad_token);
  auto add = j.find("additional_special_tokens");
  if (add != j.end() && !add->is_null()) {
    if (!add->is_array()) fail("'", path, "': \"additional_special_tokens\" is not a list");
    s.additional_special_tokens.clear();
    for (const auto& t : *add)
      s.additional_special_tokens.push_back(token_content(t, "'" + path + "': an additional special token"));
  }
}

// `<extra_id_N>...` with N decimal: N (re.match semantics: a prefix match), or -1.
int64_t extra_id_number(const std::string& token) {
  if (token.rfind(kExtraPrefix, 0) != 0) return -1;
  size_t i = std::char_traits<char>::length(kExtraPrefix), start = i;
  int64_t n = 0;
  while (i < token.size() && token[i] >= '0' && token[i] <= '9' && i - start < 12) n = n * 10 + (token[i++] - '0');
  if (i == start || i >= token.size() || token[i] != '>') return -1;
  return n;
}

}  // namespace

T5TokenizerSettings read_t5_tokenizer_settings(const std::string& folder) {
  T5TokenizerSettings s;
  const std::string config_path = (fs::path(folder) / "tokenizer_config.json").string();
  if (auto cfg = read_json_object(config_path)) {
    apply_special_tokens(*cfg, config_path, s);
    if (auto it = cfg->find("extra_ids"); it != cfg->end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 1000000)
        fail("'", config_path, "': \"extra_ids\" must be a non-negative integer");
      s.extra_ids = it->get<int64_t>();
    }
    if (auto it = cfg->find("legacy"); it != cfg->end() && !it->is_null()) {
      if (!it->is_boolean()) fail("'", config_path, "': \"legacy\" must be true or false");
      s.legacy = it->get<bool>();
    }
    if (auto it = cfg->find("added_tokens_decoder"); it != cfg->end() && it->is_object())
      for (auto t = it->begin(); t != it->end(); ++t) {
        int64_t id = -1;
        try {
          size_t pos = 0;
          id = std::stoll(t.key(), &pos);
          if (pos != t.key().size()) id = -1;
        } catch (const std::exception&) {
        }
        if (id < 0) fail("'", config_path, "': added_tokens_decoder key '", t.key(), "' is not a token id");
        s.added_tokens[token_content(*t, "'" + config_path + "': added token " + t.key())] = id;
      }
  }
  const std::string map_path = (fs::path(folder) / "special_tokens_map.json").string();
  if (auto m = read_json_object(map_path)) apply_special_tokens(*m, map_path, s);  // overrides, as in HF
  const std::string added_path = (fs::path(folder) / "added_tokens.json").string();
  if (auto a = read_json_object(added_path))
    for (auto t = a->begin(); t != a->end(); ++t) {
      if (!t->is_number_integer() || t->get<int64_t>() < 0)
        fail("'", added_path, "': the id of '", t.key(), "' is not a non-negative integer");
      s.added_tokens[t.key()] = t->get<int64_t>();
    }
  return s;
}

T5Tokenizer T5Tokenizer::load(const std::string& folder) {
  const std::string model = (fs::path(folder) / "spiece.model").string();
  if (!fs::is_regular_file(model)) fail("tokenizer folder '", folder, "' has no spiece.model");
  return from_model_bytes(read_small_file(model, kMaxModelBytes, "SentencePiece model"),
                          read_t5_tokenizer_settings(folder), "'" + model + "'");
}

T5Tokenizer T5Tokenizer::from_model_bytes(std::string_view bytes, const T5TokenizerSettings& settings,
                                          const std::string& what) {
  if (bytes.size() > kMaxModelBytes) fail(what, " is ", bytes.size(), " bytes, implausibly large");
  T5Tokenizer t;
  t.sp_ = SentencePiece::from_bytes(bytes, what);
  t.settings_ = settings;
  t.init(what);
  return t;
}

void T5Tokenizer::init(const std::string& what) {
  piece_size_ = sp_->piece_size();
  if (piece_size_ <= 0) fail(what, " has no pieces");
  // Added tokens matter only where they disagree with the vocabulary (HF adds a token only when it
  // would otherwise be unknown); the <extra_id_N> entries of added_tokens.json normally agree.
  std::map<std::string, int64_t> added;
  std::swap(added, settings_.added_tokens);
  for (const auto& [tok, id] : added)
    if (token_to_id(tok) == sp_->unk_id() && tok != settings_.unk_token) settings_.added_tokens[tok] = id;
  unk_id_ = token_to_id(settings_.unk_token);
  eos_id_ = token_to_id(settings_.eos_token);
  pad_id_ = token_to_id(settings_.pad_token);

  std::vector<std::string> extra = settings_.additional_special_tokens;
  if (extra.empty())
    for (int64_t i = 0; i < settings_.extra_ids; ++i) extra.push_back(kExtraPrefix + std::to_string(i) + ">");
  std::set<std::string> seen;
  auto add = [&](const std::string& tok) {
    if (!tok.empty() && seen.insert(tok).second) specials_.push_back(tok);
  };
  for (const auto& tok : {settings_.eos_token, settings_.unk_token, settings_.pad_token}) add(tok);
  for (const auto& tok : extra) add(tok);
  for (const auto& [tok, id] : settings_.added_tokens) add(tok);
  for (const auto& tok : specials_) check_utf8(tok, what + ": special token");
}

int64_t T5Tokenizer::token_to_id(const std::string& token) const {
  if (auto it = settings_.added_tokens.find(token); it != settings_.added_tokens.end()) return it->second;
  const int64_t n = extra_id_number(token);
  if (n >= 0) return vocab_size() - 1 - n;  // sentinels count down from the top of the vocabulary
  return sp_->piece_to_id(token);
}

std::vector<std::string> T5Tokenizer::split_special(const std::string& text, std::vector<bool>& is_special) const {
  std::vector<std::string> chunks;
  is_special.clear();
  size_t start = 0, i = 0;
  while (i < text.size()) {
    size_t best = 0;
    for (const auto& tok : specials_)
      if (tok.size() > best && text.compare(i, tok.size(), tok) == 0) best = tok.size();
    if (best == 0) {
      ++i;
      continue;
    }
    if (i > start) {
      chunks.push_back(text.substr(start, i - start));
      is_special.push_back(false);
    }
    chunks.push_back(text.substr(i, best));
    is_special.push_back(true);
    i += best;
    start = i;
  }
  if (start < text.size()) {
    chunks.push_back(text.substr(start));
    is_special.push_back(false);
  }
  return chunks;
}

std::vector<int64_t> T5Tokenizer::ids_without_eos(const std::string& text) const {
  check_utf8(text, "prompt");
  std::vector<bool> special;
  std::vector<std::string> chunks = split_special(text, special);
  const std::set<std::string> specials(specials_.begin(), specials_.end());
  bool any_special = false;
  // transformers v4.31 strips the text on both sides of every special token (plain-string specials).
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!specials.count(chunks[i])) continue;
    any_special = true;
    if (i + 1 < chunks.size()) chunks[i + 1] = python_lstrip(chunks[i + 1]);
    if (i > 0) chunks[i - 1] = python_rstrip(chunks[i - 1]);
  }
  if (any_special && !settings_.legacy)
    fail("this tokenizer has legacy=false, whose handling of text after a special-token literal (",
         "</s>, <pad>, <unk>, <extra_id_N>) is not implemented; remove the literal from the prompt");
  std::vector<int64_t> ids;
  for (const auto& chunk : chunks) {
    if (chunk.empty()) continue;
    if (specials.count(chunk)) {
      ids.push_back(token_to_id(chunk));
      continue;
    }
    for (const auto& p : sp_->encode(chunk)) ids.push_back(token_to_id(p));
  }
  return ids;
}

T5TokenizedText T5Tokenizer::encode(const std::string& text, int64_t max_length) const {
  if (max_length < 0) fail("max_length must be positive, got ", max_length);
  T5TokenizedText out;
  out.ids = ids_without_eos(text);
  const bool has_eos = !out.ids.empty() && out.ids.back() == eos_id_;
  out.untruncated = static_cast<int64_t>(out.ids.size()) + (has_eos ? 0 : 1);
  // HF truncates before adding EOS, making room for the one special token it adds.
  if (max_length > 0 && static_cast<int64_t>(out.ids.size()) + 1 > max_length) out.ids.resize(max_length - 1);
  if (out.ids.empty() || out.ids.back() != eos_id_) out.ids.push_back(eos_id_);
  out.mask.assign(out.ids.size(), 1);
  if (max_length > 0) {
    out.ids.resize(max_length, pad_id_);
    out.mask.resize(max_length, 0);
  }
  return out;
}

}  // namespace sdit

// The T5 tokenizer and PixArt's caption preprocessing against ../shared/golden/t5/tokenize.*
// (HF transformers v4.31 T5Tokenizer, diffusers' _text_preprocessing), id-exact.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <cstring>
#include <sstream>

#include "conditioning/caption.h"
#include "conditioning/python_text.h"
#include "conditioning/spm_model_check.h"
#include "conditioning/t5_conditioner.h"
#include "conditioning/t5_tokenizer.h"
#include "io/safetensors.h"
#include "testing.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace sdit;
using json = nlohmann::json;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

const json& cases() {
  static const json j = json::parse(read_file(golden("t5/tokenize.json")));
  return j;
}

const T5Tokenizer& tokenizer() {
  static const T5Tokenizer t = T5Tokenizer::load(golden("t5/tokenizer"));
  return t;
}

std::vector<int64_t> ints(const json& j) { return j.get<std::vector<int64_t>>(); }

std::vector<int64_t> row(const torch::Tensor& t, int64_t i) {
  auto r = t[i].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

// Rows of tokenize.safetensors for one preprocessing variant, compared with our whole path.
void expect_rows(const std::string& variant, CaptionCleaning cleaning) {
  const StateDict g = read_safetensors(golden("t5/tokenize.safetensors"));
  const auto& cs = cases()["cases"];
  std::vector<std::string> prompts;
  for (const auto& c : cs) prompts.push_back(c["text"].get<std::string>());
  const int64_t max_length = cases()["max_length"].get<int64_t>();
  const TextEncoding t = tokenize_prompts(tokenizer(), prompts, max_length, cleaning);
  const auto& ids = g.at("input_ids_" + variant);
  const auto& mask = g.at("attention_mask_" + variant);
  ASSERT_EQ(t.input_ids.sizes(), ids.sizes());
  for (int64_t i = 0; i < ids.size(0); ++i) {
    EXPECT_EQ(row(t.input_ids, i), row(ids, i)) << variant << " ids, case " << cs[i]["name"];
    EXPECT_EQ(row(t.attention_mask, i), row(mask, i)) << variant << " mask, case " << cs[i]["name"];
  }
}

}  // namespace

TEST(T5Tokenizer, SpecialIdsAndVocabulary) {
  const auto& s = cases()["special_ids"];
  const auto& t = tokenizer();
  EXPECT_EQ(t.pad_id(), s["pad"].get<int64_t>());
  EXPECT_EQ(t.eos_id(), s["eos"].get<int64_t>());
  EXPECT_EQ(t.unk_id(), s["unk"].get<int64_t>());
  EXPECT_EQ(t.vocab_size(), s["tokenizer_vocab_size"].get<int64_t>());
  EXPECT_EQ(t.token_to_id("<extra_id_0>"), s["extra_id_0"].get<int64_t>());  // reverse order
  EXPECT_EQ(t.token_to_id("<extra_id_99>"), s["extra_id_99"].get<int64_t>());
  EXPECT_TRUE(t.settings().legacy);
}

TEST(T5Tokenizer, EveryGoldenCaseIdExact) {
  const auto& t = tokenizer();
  for (const auto& c : cases()["cases"]) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(c["name"].get<std::string>());
    EXPECT_EQ(t.ids_without_eos(text), ints(c["hf_ids_no_special"]));
    if (c["sp_ids_equal_hf"].get<bool>()) {
      EXPECT_EQ(t.ids_without_eos(text), ints(c["sp_ids"]));
    }
    const T5TokenizedText e = t.encode(text);  // tokenizer(text): EOS, no truncation, no padding
    EXPECT_EQ(e.ids, ints(c["hf_ids"]));
    EXPECT_EQ(e.untruncated, c["n_tokens_untruncated"].get<int64_t>());
    auto padded = ints(c["ids_raw"]);  // the non-padding part of the PixArt call
    padded.resize(120, 0);
    EXPECT_EQ(t.encode(text, 120).ids, padded);
  }
}

TEST(T5Tokenizer, PaddedRowsRaw) { expect_rows("raw", CaptionCleaning::None); }
TEST(T5Tokenizer, PaddedRowsCleanFalse) { expect_rows("clean_false", CaptionCleaning::Basic); }
TEST(T5Tokenizer, PaddedRowsCleanTrue) { expect_rows("clean_true", CaptionCleaning::Full); }

TEST(T5Tokenizer, TruncationKeepsEos) {
  const auto& t = tokenizer();
  const std::string text = cases()["cases"].back()["text"].get<std::string>();  // "long", > 120 pieces
  for (int64_t max_length : {1, 2, 5, 120}) {
    const auto e = t.encode(text, max_length);
    ASSERT_EQ(static_cast<int64_t>(e.ids.size()), max_length);
    EXPECT_EQ(e.ids.back(), t.eos_id()) << max_length;
    EXPECT_EQ(std::count(e.mask.begin(), e.mask.end(), 1), max_length);
  }
  const auto empty = t.encode("", 4);
  EXPECT_EQ(empty.ids, (std::vector<int64_t>{1, 0, 0, 0}));
  EXPECT_EQ(empty.mask, (std::vector<int64_t>{1, 0, 0, 0}));
  // A literal <pad> is a real token: id 0 with mask 1.
  const auto pad = t.encode("<pad>", 3);
  EXPECT_EQ(pad.ids, (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(pad.mask, (std::vector<int64_t>{1, 1, 0}));
}

TEST(T5Tokenizer, CleanCaptionStrings) {
  for (const auto& c : cases()["cases"]) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(c["name"].get<std::string>());
    EXPECT_EQ(clean_caption(text, CaptionCleaning::None), text);
    EXPECT_EQ(clean_caption(text, CaptionCleaning::Basic), c["text_clean_false"].get<std::string>());
    EXPECT_EQ(clean_caption(text, CaptionCleaning::Full), c["text_clean_true"].get<std::string>());
  }
}

TEST(T5Tokenizer, PythonStringSemantics) {
  EXPECT_EQ(python_lower("ΟΔΟΣ ΣΟΦΟΣ"), "οδος σοφος");  // final sigma U+03C2 at word ends
  EXPECT_EQ(python_lower("İ"), "i\u0307");
  EXPECT_EQ(python_lower("ẞ Ǆ ǅ"), "ß ǆ ǆ");
  EXPECT_EQ(python_strip("\u00a0\u3000 x \u2003\x1c"), "x");
  EXPECT_EQ(python_strip("\u200bx\u200b"), "\u200bx\u200b");  // U+200B is not Python whitespace
  EXPECT_THROW(clean_caption("bad \xff utf-8", CaptionCleaning::Basic), Error);
  EXPECT_THROW(clean_caption(std::string(9000, 'a'), CaptionCleaning::Full), Error);  // bounded cost
  EXPECT_EQ(clean_caption(std::string(9000, 'a'), CaptionCleaning::Basic), std::string(9000, 'a'));
  EXPECT_THROW(tokenizer().encode("bad \xc3"), Error);
}

TEST(T5Tokenizer, LegacyFalseRefusesOnlySpecialLiterals) {
  T5TokenizerSettings s = read_t5_tokenizer_settings(golden("t5/tokenizer"));
  s.legacy = false;
  const auto t = T5Tokenizer::from_model_bytes(read_file(golden("t5/tokenizer/spiece.model")), s);
  EXPECT_EQ(t.encode("a photo of a cat", 16).ids, tokenizer().encode("a photo of a cat", 16).ids);
  try {
    t.encode("a </s> b");
    FAIL() << "legacy=false with a special-token literal must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("legacy=false"), std::string::npos) << e.what();
  }
}

TEST(T5Tokenizer, HostileModelsAreRefusedClearly) {
  const std::string good = read_file(golden("t5/tokenizer/spiece.model"));
  const std::vector<std::string> bad = {
      "",
      "not a protobuf at all",
      good.substr(0, good.size() / 2),
      std::string(1000, '\xff'),
      "{\"model\": \"json\"}",
  };
  for (const auto& bytes : bad) {
    try {
      T5Tokenizer::from_model_bytes(bytes);
      ADD_FAILURE() << "accepted a hostile model of " << bytes.size() << " bytes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("SentencePiece model"), std::string::npos) << e.what();
    }
  }
  // On disk, through the folder loader.
  const fs::path dir = fs::temp_directory_path() / ("sdit_spiece_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "spiece.model", std::ios::binary) << "garbage";
  EXPECT_THROW(T5Tokenizer::load(dir.string()), Error);
  std::ofstream(dir / "spiece.model", std::ios::binary) << good;
  std::ofstream(dir / "tokenizer_config.json") << "{\"legacy\": \"yes\"}";
  EXPECT_THROW(T5Tokenizer::load(dir.string()), Error);
  std::ofstream(dir / "tokenizer_config.json") << "[1, 2";
  EXPECT_THROW(T5Tokenizer::load(dir.string()), Error);
  fs::remove(dir / "tokenizer_config.json");
  EXPECT_EQ(T5Tokenizer::load(dir.string()).encode("a cat", 8).ids, tokenizer().encode("a cat", 8).ids);
  fs::remove_all(dir);
  EXPECT_THROW(T5Tokenizer::load(dir.string()), Error);
}

namespace {

// A ModelProto holding only normalizer_spec { precompiled_charsmap: <u32 trie bytes><trie><strings> }.
std::string model_with_charsmap(const std::vector<uint32_t>& trie, const std::string& strings) {
  std::string blob(4, '\0');
  const uint32_t bytes = static_cast<uint32_t>(trie.size() * 4);
  std::memcpy(blob.data(), &bytes, 4);
  blob.append(reinterpret_cast<const char*>(trie.data()), bytes);
  blob += strings;
  auto len = [](size_t n) {
    std::string v;
    do {
      v.push_back(static_cast<char>((n & 0x7F) | (n > 0x7F ? 0x80 : 0)));
      n >>= 7;
    } while (n);
    return v;
  };
  const std::string spec = std::string(1, '\x12') + len(blob.size()) + blob;  // field 2, bytes
  return std::string(1, '\x1a') + len(spec.size()) + spec;                    // field 3, message
}

}  // namespace

// libsentencepiece 0.1.97 reads a corrupt character map out of bounds (fuzz/fuzz_spiece.cpp found a
// heap overread under ASan); the map is walked before SentencePiece sees it.
TEST(T5Tokenizer, CorruptCharacterMapsAreRefusedBeforeSentencePiece) {
  EXPECT_EQ(check_sentencepiece_charsmaps(read_file(golden("t5/tokenizer/spiece.model"))), "");
  // Units: label | has_leaf << 8 | offset << 10; values carry the top bit. 0xFFFFFFFF matches no byte.
  const uint32_t leaf = 1u << 8, value = 1u << 31;
  std::vector<uint32_t> t(256, 0xFFFFFFFFu);
  t[0] = 512u << 10;  // the root's children would lie beyond the 256 units
  EXPECT_NE(check_sentencepiece_charsmaps(model_with_charsmap(t, "x")).find("leaves the array"), std::string::npos);
  const std::string x0("x\0", 2);
  auto fresh = [&] {
    t.assign(512, 0xFFFFFFFFu);
    t[0] = 256u << 10;  // root base 256: byte 'a' leads to unit 256 ^ 97 = 353
  };
  fresh();
  t[353] = 97 | leaf | (97u << 10);  // base 353 ^ 97 = 256, from which 'a' leads back to 353
  t[256] = value;
  EXPECT_NE(check_sentencepiece_charsmaps(model_with_charsmap(t, x0)).find("cycle"), std::string::npos);
  fresh();
  t[353] = 97 | leaf | ((353u ^ 300u) << 10);  // base 300, whose value names string 7 of a 2-byte blob
  t[300] = value | 7;
  EXPECT_NE(check_sentencepiece_charsmaps(model_with_charsmap(t, x0)).find("outside the map"), std::string::npos);
  t[300] = value;  // "a" -> "x": a valid one-rule map
  EXPECT_EQ(check_sentencepiece_charsmaps(model_with_charsmap(t, x0)), "");
  EXPECT_EQ(check_sentencepiece_charsmaps(std::string("\x1a\x05\x12\x09", 4)), "malformed protobuf data");
}

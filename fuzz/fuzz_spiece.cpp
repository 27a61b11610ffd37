// libFuzzer target: loading a SentencePiece model (spiece.model) from bytes through the T5
// tokenizer (conditioning/t5_tokenizer.h), then tokenizing prompts that exercise special-token
// splitting, normalisation, unknown characters and truncation with whatever model loaded.
// Seed: ../shared/golden/t5/tokenizer/spiece.model (a 400-piece unigram model with T5's options).
// Every input must end in a tokenizer or an sdit::Error, never a crash, abort or hang.
// Built with the shim linked directly (-DSPARSEDIT_SPM_LINKED: sanitizers refuse RTLD_DEEPBIND).
// Found: libsentencepiece 0.1.97 reads out of bounds on a corrupt precompiled_charsmap (now walked
// first by conditioning/spm_model_check.cpp); 10 minutes after that fix: no findings.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "conditioning/t5_tokenizer.h"
#include "util/error.h"

// Without libtorch this target cannot use fuzz/common.cpp; it answers scripts/fuzz.sh's seed request
// itself. A valid model cannot be written without SentencePiece's trainer: the golden tokenizer's
// spiece.model seeds it (scripts/fuzz.sh), an empty file otherwise.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("SPARSEDIT_FUZZ_WRITE_SEEDS")) {
    std::filesystem::create_directories(dir);
    std::ofstream(std::filesystem::path(dir) / "empty");
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto tok =
        sdit::T5Tokenizer::from_model_bytes(std::string_view(reinterpret_cast<const char*>(data), size), {}, "fuzz model");
    for (const char* prompt : {"A small cactus with a happy face in the Sahara desert.", "", "   ",
                               "a </s> b <pad> <extra_id_0> <unk>", "ＦＵＬＬ ﬁ ① \xe2\x96\x81 \xf0\x9f\x90\xb1"})
      tok.encode(prompt, 8);
  } catch (const sdit::Error&) {
  }
  return 0;
}

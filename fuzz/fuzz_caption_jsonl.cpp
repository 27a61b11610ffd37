// libFuzzer target: the caption JSONL reader of `sparsedit encode --captions FILE.jsonl` must answer
// every input with image/caption pairs or one sdit::Error, never a crash or a hang.
// Seeds: {"image": "a.png", "caption": "a cat"}\n{"image": "/abs/b.jpg", "caption": ""}\n, "\n\n",
// {"image": 3}, [1,2], {"image": "x", "caption": "\u00e9"}.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"
#include "data/caption_index.h"
#include "util/error.h"

void sdit::fuzz::write_seeds(const std::string& dir) {
  write_seed(dir, "pairs.jsonl", "{\"image\": \"a.png\", \"caption\": \"a cat\"}\n{\"image\": \"/abs/b.jpg\", \"caption\": \"\"}\n");
  write_seed(dir, "blank.jsonl", "\n\n");
  write_seed(dir, "bad_type.jsonl", "{\"image\": 3}\n");
  write_seed(dir, "array.jsonl", "[1,2]\n");
  write_seed(dir, "unicode.jsonl", "{\"image\": \"x\", \"caption\": \"\\u00e9\"}\n");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    sdit::parse_caption_jsonl(text, "/base", "fuzz.jsonl");
  } catch (const sdit::Error&) {
  }
  return 0;
}

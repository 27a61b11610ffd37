// libFuzzer target: the caption JSONL reader of `sparsedit encode --captions FILE.jsonl` must answer
// every input with image/caption pairs or one sdit::Error, never a crash or a hang.
// Seeds: {"image": "a.png", "caption": "a cat"}\n{"image": "/abs/b.jpg", "caption": ""}\n, "\n\n",
// {"image": 3}, [1,2], {"image": "x", "caption": "\u00e9"}.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/caption_index.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    sdit::parse_caption_jsonl(text, "/base", "fuzz.jsonl");
  } catch (const sdit::Error&) {
  }
  return 0;
}

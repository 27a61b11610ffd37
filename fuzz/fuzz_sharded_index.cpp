// libFuzzer target: the sharded-checkpoint index reader (io/sharded.h) on arbitrary bytes.
// Seeds: ../shared/golden/t5/t5_full_safetensors_sharded/model.safetensors.index.json and
// ../shared/golden/t5/t5_encoder_bin_sharded/pytorch_model.bin.index.json.
// Every input must end in a parsed index or an sdit::Error, never a crash, hang or leak.
// Needs no libtorch:
//   clang++ -g -O1 -fsanitize=fuzzer,address,undefined -std=c++17 -Isrc fuzz/fuzz_sharded_index.cpp
//     src/io/sharded.cpp src/io/file_util.cpp -o fuzz_sharded_index
// 2 minutes (~960,000 inputs) from the two golden indexes: no findings.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/sharded.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sdit::parse_sharded_index(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz index");
  } catch (const sdit::Error&) {
  }
  return 0;
}

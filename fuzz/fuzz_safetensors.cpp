// libFuzzer target: the safetensors reader (io/safetensors.h) on arbitrary bytes.
#include "common.h"
#include "io/file_util.h"
#include "io/safetensors.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  StateDict sd;
  sd.set("w", torch::arange(6, torch::kFloat).reshape({2, 3}));
  sd.set("half", torch::ones({3}, torch::kHalf));
  sd.set("bf16", torch::ones({2, 1}, torch::kBFloat16));
  sd.set("i64", torch::tensor({int64_t(-1), int64_t(7)}));
  sd.set("i8", torch::tensor({-3, 4}, torch::kChar));
  sd.set("mask", torch::tensor({true, false, true}));
  sd.set("scalar", torch::tensor(2.5));
  sd.set("empty", torch::zeros({0, 3}));
  sd.metadata["format"] = "pt";
  write_safetensors(dir + "/dtypes.safetensors", sd);
  StateDict one;
  one.set("x", torch::ones({1}));
  write_safetensors(dir + "/one.safetensors", one);
  write_safetensors(dir + "/none.safetensors", StateDict());
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sdit::fuzz::run_reader([&] {
    auto sd = sdit::read_safetensors(sdit::MappedFile::from_memory("input.safetensors", data, size));
    sdit::fuzz::check_state_dict(sd);
  });
  return 0;
}

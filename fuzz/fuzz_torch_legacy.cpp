// libFuzzer target: the legacy (pre-1.6) torch.save stream (io/torch_pt.h) on arbitrary bytes.
#include "common.h"
#include "io/file_util.h"
#include "io/torch_pt.h"
#include "pt_builders.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  StateDict sd;
  sd.set("conv.weight", torch::arange(12, torch::kFloat).reshape({2, 2, 3}));
  sd.set("bias", torch::ones({3}));
  write_seed(dir, "floats.pth", legacy_pt_bytes(sd));
  StateDict longs;
  longs.set("steps", torch::tensor({int64_t(5), int64_t(9)}));
  write_seed(dir, "longs.pth", legacy_pt_bytes(longs, "torch", "LongStorage"));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || data[0] != 0x80) return 0;  // zip archives have their own target
  sdit::fuzz::run_reader([&] {
    sdit::fuzz::check_value(sdit::read_torch_pt(sdit::MappedFile::from_memory("input.pth", data, size)));
  });
  return 0;
}

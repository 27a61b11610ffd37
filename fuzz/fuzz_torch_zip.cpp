// libFuzzer target: torch.save's zip format (io/torch_pt.h) on arbitrary bytes; every tensor it
// returns must be a view inside its storage.
#include "common.h"
#include "io/file_util.h"
#include "io/torch_pt.h"
#include "pt_builders.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  StateDict sd;
  sd.set("w", torch::arange(6, torch::kFloat).reshape({2, 3}));
  sd.set("t", torch::arange(6, torch::kDouble).reshape({2, 3}).t());
  sd.set("i", torch::tensor({int64_t(3), int64_t(-4)}));
  sd.set("h", torch::ones({2}, torch::kHalf));
  sd.set("m", torch::tensor({true, false}));
  write_torch_pt(dir + "/state_dict.pt", sd);
  write_seed(dir, "checkpoint.pt", pt_archive_bytes(seed_checkpoint_pickle(2), seed_storages()));
  write_seed(dir, "checkpoint_p4.pt", pt_archive_bytes(seed_checkpoint_pickle(4), seed_storages()));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == 0x80) return 0;  // the legacy stream has its own target
  sdit::fuzz::run_reader([&] {
    sdit::fuzz::check_value(sdit::read_torch_pt(sdit::MappedFile::from_memory("input.pt", data, size)));
  });
  return 0;
}

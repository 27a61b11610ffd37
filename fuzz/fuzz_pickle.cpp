// libFuzzer target: the restricted unpickler (io/pickle.h) through a valid torch.save archive:
// the input is data.pkl, wrapped with fixed storages "0" (16 floats) and "1" (4 floats), so the
// fuzzer spends its time on the pickle rather than on the zip structure.
#include "common.h"
#include "io/file_util.h"
#include "io/limits.h"
#include "io/torch_pt.h"
#include "io/zip.h"
#include "pt_builders.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  write_seed(dir, "checkpoint.pkl", seed_checkpoint_pickle(2));
  write_seed(dir, "checkpoint_p4.pkl", seed_checkpoint_pickle(4));
  write_seed(dir, "offset_view.pkl", tensor_pickle("0", 16, {2, 3}, {3, 1}, 5).bytes());
  write_seed(dir, "stride0.pkl", tensor_pickle("1", 4, {1000, 1000}, {0, 0}).bytes());
  write_seed(dir, "long.pkl", tensor_pickle("1", 2, {2}, {1}, 0, "LongStorage").bytes());
  // A state dict as write_torch_pt pickles it, taken out of its archive.
  StateDict sd;
  sd.set("a", torch::ones({4, 4}));
  sd.set("b", torch::ones({4}));
  const std::string pt = dir + "/.state_dict.pt";
  write_torch_pt(pt, sd);
  ZipReader zip(pt);
  const ZipEntry* pkl = zip.find("archive/data.pkl");
  write_seed(dir, "state_dict.pkl", std::string(reinterpret_cast<const char*>(zip.data(*pkl)), pkl->size));
  std::remove(pt.c_str());
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdit;
  static const auto storages = fuzz::seed_storages();
  const std::string archive = pt_archive_bytes(std::string(reinterpret_cast<const char*>(data), size), storages);
  fuzz::run_reader([&] {
    const PyValue v = read_torch_pt(MappedFile::from_memory("input.pt", archive.data(), archive.size()));
    // Walked per reference, the tree stays within the bound the unpickler promises.
    const uint64_t walked = fuzz::check_value(v);
    if (walked > kPickleExpansionValues + size)
      fuzz::unexpected("a tree larger than the expansion limit", std::to_string(walked) + " values");
  });
  return 0;
}

// libFuzzer target: NumPy .npz/.npy (data/npz.h) as `eval` reads them, ADM reference batches
// included (they come from elsewhere): every array NpzReader returns must lie inside the input
// (stored arrays are views of it) and agree with the shape its header declares.
#include "common.h"
#include "data/npz.h"
#include "io/file_util.h"
#include "io/zip.h"

namespace sdit::fuzz {
namespace {

std::string npz(const std::vector<std::pair<std::string, torch::Tensor>>& arrays) {
  std::string out;
  ZipWriter zip(out);
  for (const auto& [name, t] : arrays) {
    const auto bytes = encode_npy(t);
    zip.add(name + ".npy", bytes.data(), bytes.size());
  }
  zip.finish();
  return out;
}

}  // namespace

void write_seeds(const std::string& dir) {
  const auto images = torch::arange(2 * 4 * 4 * 3, torch::kLong).remainder(256).to(torch::kByte).reshape({2, 4, 4, 3});
  write_seed(dir, "samples.npz", npz({{"arr_0", images}, {"arr_1", torch::tensor({3, 7}, torch::kLong)}}));
  write_seed(dir, "stats.npz", npz({{"mu", torch::ones({4}, torch::kDouble)}, {"sigma", torch::eye(4, torch::kDouble)}}));
  write_seed(dir, "dtypes.npz", npz({{"h", torch::ones({3}, torch::kHalf)}, {"f", torch::ones({2, 2})},
                                     {"b", torch::ones({5}, torch::kBool)}, {"i", torch::ones({1}, torch::kInt)}}));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdit;
  fuzz::run_reader([&] {
    NpzReader npz(MappedFile::from_memory("input.npz", data, size));
    for (const auto& name : npz.names()) {
      try {
        fuzz::check_tensor(npz.get(name));
      } catch (const Error&) {  // one bad array: the others are still read
      }
    }
  });
  return 0;
}

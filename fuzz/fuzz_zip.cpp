// libFuzzer target: the zip reader (io/zip.h) on arbitrary bytes: every entry it accepts must lie
// inside the input, and a stored entry's bytes are read through its CRC check.
#include "common.h"
#include "io/file_util.h"
#include "io/zip.h"

namespace sdit::fuzz {
namespace {

std::string archive(bool zip64, const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out;
  ZipWriter zip(out, zip64);
  for (const auto& [name, bytes] : entries) zip.add(name, bytes.data(), bytes.size());
  zip.finish();
  return out;
}

}  // namespace

void write_seeds(const std::string& dir) {
  const std::vector<std::pair<std::string, std::string>> two = {{"a/one", "hello"}, {"a/two", ""}};
  write_seed(dir, "plain.zip", archive(false, two));
  write_seed(dir, "zip64.zip", archive(true, two));
  write_seed(dir, "empty.zip", archive(false, {}));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdit;
  fuzz::run_reader([&] {
    auto file = MappedFile::from_memory("input.zip", data, size);
    ZipReader zip(file);
    for (const auto& e : zip.entries()) {
      if (zip.find(e.name) == nullptr) fuzz::unexpected("an entry that find() does not find", e.name);
      if (e.data_offset > file->size() || e.compressed_size > file->size() - e.data_offset)
        fuzz::unexpected("an entry outside the file", e.name);
      try {
        const uint8_t* p = zip.data_checked(e);
        if (e.size > 0) {
          volatile uint8_t sink = p[0] ^ p[e.size - 1];
          (void)sink;
        }
      } catch (const Error&) {
      }
    }
  });
  return 0;
}

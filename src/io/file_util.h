#pragma once
// Read-only memory maps shared by tensors that alias them, and atomic file replacement, so a
// crash mid-save never leaves a truncated checkpoint under the final name.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

// Checkpoint formats store little-endian data; tensors alias the bytes as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "sparsedit checkpoint I/O needs a little-endian host");

namespace sdit {

class MappedFile {
 public:
  // Maps the whole file copy-on-write: tensors aliasing the map may be modified in place without
  // touching the file. Throws sdit::Error naming the path when it cannot be opened.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // A copy of bytes already in memory, standing in for a file named `name` (in-memory readers,
  // tests, fuzz targets). The copy is page-aligned and writable, like a map.
  static std::shared_ptr<MappedFile> from_memory(const std::string& name, const void* data, size_t size);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;  // munmap, else free
  std::string path_;
};

// Writes to "<path>.tmp.<pid>"; commit() flushes, fsyncs and renames over `path`. Destroying an
// uncommitted writer removes the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  // Overwrites bytes already written (a header field known only at the end); offset() is unchanged.
  void write_at(uint64_t offset, const void* data, size_t n);
  uint64_t offset() const { return offset_; }
  void commit();
  const std::string& path() const { return path_; }

 private:
  void put(uint64_t offset, const void* data, size_t n);  // all n bytes at offset (pwrite)
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  bool committed_ = false;
};

bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
std::string read_text_file(const std::string& path);

}  // namespace sdit

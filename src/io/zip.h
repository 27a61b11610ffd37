#pragma once
// The subset of ZIP that torch.save uses: uncompressed (STORED) entries, zip64 records for large
// archives. The reader validates every offset against the file; the writer aligns entry data to
// 64 bytes (as PyTorch does) so storages can be used in place.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/file_util.h"

namespace sdit {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;         // 0 = stored
  uint32_t crc32 = 0;
  uint64_t size = 0;           // uncompressed size
  uint64_t compressed_size = 0;
  uint64_t data_offset = 0;    // of the entry's bytes in the file
  uint64_t header_offset = 0;  // of its local header, where the entry's extent in the file begins
};

class ZipReader {
 public:
  // Throws sdit::Error naming the file when the archive structure is invalid.
  explicit ZipReader(const std::string& path);
  explicit ZipReader(std::shared_ptr<MappedFile> file);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;  // the first entry of that name; constant time
  // Pointer to a stored entry's bytes inside the map; throws for compressed entries.
  const uint8_t* data(const ZipEntry& e) const;
  // Same, and checks the CRC-32 (for small entries such as data.pkl).
  const uint8_t* data_checked(const ZipEntry& e) const;
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  const std::string& path() const { return file_->path(); }

 private:
  void parse();
  std::shared_ptr<MappedFile> file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;  // a lookup per storage must not scan every entry
};

class ZipWriter {
 public:
  // force_zip64 writes zip64 records even for small archives (used to test the reader).
  explicit ZipWriter(AtomicFile& out, bool force_zip64 = false) : file_(&out), force64_(force_zip64) {}
  // Appends the archive to `out` instead of a file (tests and fuzz targets build archives in memory).
  explicit ZipWriter(std::string& out, bool force_zip64 = false) : bytes_(&out), force64_(force_zip64) {}
  void add(const std::string& name, const void* data, uint64_t size);
  // An entry written in pieces (one too large to hold in memory): begin() writes its header with the
  // declared size, append() its bytes, end() checks that exactly `size` came and fills in the CRC-32.
  void begin(const std::string& name, uint64_t size);
  void append(const void* data, uint64_t size);
  void end();
  // Writes the central directory; the caller then commits the AtomicFile.
  void finish();

 private:
  struct Written {
    std::string name;
    uint32_t crc;
    uint64_t size, offset;
  };
  struct Open {
    Written entry;
    uint64_t crc_at = 0, appended = 0;  // where the local header's CRC field is; bytes so far
  };
  void write_at(uint64_t offset, const void* data, uint64_t size);
  std::unique_ptr<Open> open_;
  void write(const void* data, uint64_t size);
  uint64_t offset() const;
  AtomicFile* file_ = nullptr;
  std::string* bytes_ = nullptr;
  bool force64_;
  bool finished_ = false;
  std::vector<Written> written_;
};

uint32_t crc32(const void* data, uint64_t size, uint32_t crc = 0);

}  // namespace sdit

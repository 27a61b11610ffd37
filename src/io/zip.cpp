#include "io/zip.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace sdit {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr uint64_t k32 = 0xFFFFFFFFull;
constexpr uint16_t k16 = 0xFFFF;
constexpr uint64_t kAlign = 64;

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

// Slicing-by-8 tables: checksumming a multi-GB checkpoint on save should not dominate the write.
struct CrcTables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
};

struct Buf {
  std::vector<uint8_t> b;
  void u16(uint64_t v) { for (int i = 0; i < 2; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void u32(uint64_t v) { for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void str(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
};

// a + b <= limit without wrapping.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

}  // namespace

uint32_t crc32(const void* data, uint64_t size, uint32_t crc) {
  static const CrcTables tables;
  const auto& t = tables.t;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  while (size >= 8) {
    uint32_t lo = rd32(p) ^ crc, hi = rd32(p + 4);
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

ZipReader::ZipReader(const std::string& path) : file_(MappedFile::open(path)) { parse(); }
ZipReader::ZipReader(std::shared_ptr<MappedFile> file) : file_(std::move(file)) { parse(); }

void ZipReader::parse() {
  const uint8_t* f = file_->data();
  const uint64_t size = file_->size();
  auto bad = [&](const std::string& why) { fail("zip archive '", file_->path(), "': ", why); };
  if (size < 22) bad("file is " + std::to_string(size) + " bytes, too small for a zip archive");

  // The end record sits in the last 22 + 65535 bytes (its comment is at most 65535 bytes).
  uint64_t eocd = 0;
  bool found = false;
  const uint64_t lowest = size > 22 + 0xFFFFull ? size - 22 - 0xFFFFull : 0;
  for (uint64_t pos = size - 22;; --pos) {
    if (rd32(f + pos) == kEndSig && pos + 22 + rd16(f + pos + 20) <= size) {
      eocd = pos;
      found = true;
      break;
    }
    if (pos == lowest) break;
  }
  if (!found) bad("no end-of-central-directory record (not a zip file, or truncated)");

  uint64_t count = rd16(f + eocd + 10);
  uint64_t cd_size = rd32(f + eocd + 12);
  uint64_t cd_offset = rd32(f + eocd + 16);
  if (rd16(f + eocd + 4) != 0 || rd16(f + eocd + 6) != 0) bad("multi-disk archives are not supported");
  if (eocd >= 20 && rd32(f + eocd - 20) == kLocator64Sig) {
    uint64_t rec = rd64(f + eocd - 12);
    if (!fits(rec, 56, eocd - 20)) bad("zip64 end record offset " + std::to_string(rec) + " is outside the file");
    if (rd32(f + rec) != kEnd64Sig) bad("zip64 end record has a bad signature");
    // Values not saturated in the classic record must agree with the zip64 ones.
    const uint64_t count64 = rd64(f + rec + 32), size64 = rd64(f + rec + 40), offset64 = rd64(f + rec + 48);
    if ((count != k16 && count != count64) || (cd_size != k32 && cd_size != size64) ||
        (cd_offset != k32 && cd_offset != offset64))
      bad("the end record and the zip64 end record disagree about the central directory");
    count = count64;
    cd_size = size64;
    cd_offset = offset64;
  } else if (count == k16 || cd_size == k32 || cd_offset == k32) {
    bad("end record announces zip64 but the zip64 locator is missing");
  }
  if (!fits(cd_offset, cd_size, eocd))
    bad("central directory (offset " + std::to_string(cd_offset) + ", size " + std::to_string(cd_size) +
        ") lies outside the file");
  if (count > cd_size / 46) bad("central directory claims " + std::to_string(count) + " entries but is too small");

  entries_.reserve(count);
  uint64_t pos = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (!fits(pos, 46, cd_end)) bad("central directory entry " + std::to_string(i) + " is truncated");
    const uint8_t* c = f + pos;
    if (rd32(c) != kCentralSig) bad("central directory entry " + std::to_string(i) + " has a bad signature");
    ZipEntry e;
    const uint16_t flags = rd16(c + 8);
    e.method = rd16(c + 10);
    e.crc32 = rd32(c + 16);
    e.compressed_size = rd32(c + 20);
    e.size = rd32(c + 24);
    const uint64_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
    uint64_t local = rd32(c + 42);
    if (!fits(pos + 46, nlen + xlen + clen, cd_end)) bad("central directory entry " + std::to_string(i) + " is truncated");
    e.name.assign(reinterpret_cast<const char*>(c + 46), nlen);
    if (flags & 1) bad("entry '" + e.name + "' is encrypted");

    // zip64 extra field: only the fields saturated in the fixed header are present, in this order.
    const uint8_t* x = c + 46 + nlen;
    const uint8_t* xend = x + xlen;
    while (xend - x >= 4) {
      const uint16_t id = rd16(x), len = rd16(x + 2);
      if (len > xend - x - 4) bad("entry '" + e.name + "' has a malformed extra field");
      if (id == 0x0001) {
        const uint8_t* z = x + 4;
        uint64_t left = len;
        auto take = [&](uint64_t& v) {
          if (left < 8) bad("entry '" + e.name + "' has a short zip64 extra field");
          v = rd64(z);
          z += 8;
          left -= 8;
        };
        if (e.size == k32) take(e.size);
        if (e.compressed_size == k32) take(e.compressed_size);
        if (local == k32) take(local);
      }
      x += 4 + len;
    }
    if (e.size == k32 || e.compressed_size == k32 || local == k32) {
      // Saturated values without a zip64 field would be taken at face value by a lax reader.
      bool had64 = false;
      for (const uint8_t* y = c + 46 + nlen; xend - y >= 4; y += 4 + rd16(y + 2)) had64 |= rd16(y) == 1;
      if (!had64) bad("entry '" + e.name + "' needs a zip64 extra field that is missing");
    }
    if (!fits(local, 30, size)) bad("entry '" + e.name + "' has a local header offset outside the file");
    const uint8_t* l = f + local;
    if (rd32(l) != kLocalSig) bad("entry '" + e.name + "' has a bad local header signature");
    const uint64_t data = local + 30 + rd16(l + 26) + rd16(l + 28);
    if (!fits(data, e.compressed_size, size))
      bad("entry '" + e.name + "' (" + std::to_string(e.compressed_size) + " bytes) runs past the end of the file");
    if (e.method == 0 && e.compressed_size != e.size)
      bad("stored entry '" + e.name + "' has different compressed and uncompressed sizes");
    e.data_offset = data;
    e.header_offset = local;
    index_.emplace(e.name, entries_.size());
    entries_.push_back(std::move(e));
    pos += 46 + nlen + xlen + clen;
  }
  // Entries sharing bytes (the "overlapping zip bomb") would let a small file stand for many
  // large ones; no archive writer produces them.
  std::vector<const ZipEntry*> by_offset;
  for (const auto& e : entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const ZipEntry* a, const ZipEntry* b) { return a->header_offset < b->header_offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->header_offset < by_offset[i - 1]->data_offset + by_offset[i - 1]->compressed_size)
      bad("entries '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const uint8_t* ZipReader::data(const ZipEntry& e) const {
  if (e.method != 0)
    fail("zip archive '", file_->path(), "': entry '", e.name, "' is compressed (method ", e.method,
         e.method == 8 ? ", deflate" : "", "); only uncompressed entries are supported, as torch.save writes them");
  return file_->data() + e.data_offset;
}

const uint8_t* ZipReader::data_checked(const ZipEntry& e) const {
  const uint8_t* p = data(e);
  if (crc32(p, e.size) != e.crc32) fail("zip archive '", file_->path(), "': entry '", e.name, "' fails its CRC-32 check");
  return p;
}

void ZipWriter::write(const void* data, uint64_t size) {
  if (file_) file_->write(data, size);
  else bytes_->append(static_cast<const char*>(data), size);
}

uint64_t ZipWriter::offset() const { return file_ ? file_->offset() : bytes_->size(); }

void ZipWriter::add(const std::string& name, const void* data, uint64_t size) {
  begin(name, size);
  append(data, size);
  end();
}

void ZipWriter::write_at(uint64_t offset, const void* data, uint64_t size) {
  if (file_) file_->write_at(offset, data, size);
  else std::memcpy(bytes_->data() + offset, data, size);
}

void ZipWriter::begin(const std::string& name, uint64_t size) {
  if (finished_) fail("internal: zip entry '", name, "' added after finish()");
  if (open_) fail("internal: zip entry '", name, "' begun before '", open_->entry.name, "' ended");
  if (name.size() > 0xFFFF) fail("zip entry name too long: '", name.substr(0, 64), "...'");
  const uint64_t offset = this->offset();
  const bool z64 = force64_ || size >= k32;
  Buf h;
  h.u32(kLocalSig);
  h.u16(z64 ? 45 : 20);
  h.u16(0);
  h.u16(0);  // stored
  h.u16(0);
  h.u16(0x21);  // 1980-01-01: entries carry no meaningful time
  h.u32(0);     // CRC-32, filled in by end()
  h.u32(z64 ? k32 : size);
  h.u32(z64 ? k32 : size);
  h.u16(name.size());
  const uint64_t fixed_extra = z64 ? 20 : 0;
  const uint64_t before_pad = offset + 30 + name.size() + fixed_extra + 4;
  const uint64_t pad = (kAlign - before_pad % kAlign) % kAlign;
  h.u16(fixed_extra + 4 + pad);
  h.str(name);
  if (z64) {
    h.u16(0x0001);
    h.u16(16);
    h.u64(size);
    h.u64(size);
  }
  h.u16(0x4246);  // padding field id PyTorch uses ("FB")
  h.u16(pad);
  h.b.insert(h.b.end(), pad, 'Z');
  write(h.b.data(), h.b.size());
  open_ = std::make_unique<Open>();
  open_->entry = {name, 0, size, offset};
  open_->crc_at = offset + 14;
}

void ZipWriter::append(const void* data, uint64_t size) {
  if (!open_) fail("internal: zip bytes appended outside an entry");
  if (size > open_->entry.size - open_->appended)
    fail("internal: zip entry '", open_->entry.name, "' declared ", open_->entry.size, " bytes but got more");
  write(data, size);
  open_->entry.crc = crc32(data, size, open_->entry.crc);
  open_->appended += size;
}

void ZipWriter::end() {
  if (!open_) fail("internal: zip entry ended before it began");
  if (open_->appended != open_->entry.size)
    fail("internal: zip entry '", open_->entry.name, "' declared ", open_->entry.size, " bytes but got ",
         open_->appended);
  Buf crc;
  crc.u32(open_->entry.crc);
  write_at(open_->crc_at, crc.b.data(), crc.b.size());
  written_.push_back(open_->entry);
  open_.reset();
}

void ZipWriter::finish() {
  if (finished_) return;
  if (open_) fail("internal: zip archive finished inside entry '", open_->entry.name, "'");
  finished_ = true;
  const uint64_t cd_offset = offset();
  Buf cd;
  for (const auto& w : written_) {
    const bool big_size = force64_ || w.size >= k32, big_off = force64_ || w.offset >= k32;
    const bool z64 = big_size || big_off;
    cd.u32(kCentralSig);
    cd.u16(z64 ? 45 : 20);
    cd.u16(z64 ? 45 : 20);
    cd.u16(0);
    cd.u16(0);
    cd.u16(0);
    cd.u16(0x21);
    cd.u32(w.crc);
    cd.u32(big_size ? k32 : w.size);
    cd.u32(big_size ? k32 : w.size);
    cd.u16(w.name.size());
    cd.u16(z64 ? 4 + (big_size ? 16 : 0) + (big_off ? 8 : 0) : 0);
    cd.u16(0);
    cd.u16(0);
    cd.u16(0);
    cd.u32(0);
    cd.u32(big_off ? k32 : w.offset);
    cd.str(w.name);
    if (z64) {
      cd.u16(0x0001);
      cd.u16((big_size ? 16 : 0) + (big_off ? 8 : 0));
      if (big_size) {
        cd.u64(w.size);
        cd.u64(w.size);
      }
      if (big_off) cd.u64(w.offset);
    }
  }
  const uint64_t cd_size = cd.b.size();
  const uint64_t n = written_.size();
  const bool z64 = force64_ || n >= k16 || cd_offset >= k32 || cd_size >= k32;
  Buf end;
  if (z64) {
    const uint64_t rec = cd_offset + cd_size;
    end.u32(kEnd64Sig);
    end.u64(44);
    end.u16(45);
    end.u16(45);
    end.u32(0);
    end.u32(0);
    end.u64(n);
    end.u64(n);
    end.u64(cd_size);
    end.u64(cd_offset);
    end.u32(kLocator64Sig);
    end.u32(0);
    end.u64(rec);
    end.u32(1);
  }
  end.u32(kEndSig);
  end.u16(0);
  end.u16(0);
  end.u16(z64 ? k16 : n);
  end.u16(z64 ? k16 : n);
  end.u32(z64 ? k32 : cd_size);
  end.u32(z64 ? k32 : cd_offset);
  end.u16(0);
  write(cd.b.data(), cd.b.size());
  write(end.b.data(), end.b.size());
}

}  // namespace sdit

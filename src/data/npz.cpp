#include "data/npz.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>

#include "io/file_util.h"
#include "util/error.h"

namespace sdit {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr int64_t kMaxDims = 32;  // numpy's own limit (NPY_MAXDIMS)

struct DtypeInfo {
  torch::ScalarType type;
  char kind;
  int size;
};
constexpr DtypeInfo kDtypes[] = {
    {torch::kBool, 'b', 1},  {torch::kByte, 'u', 1},  {torch::kChar, 'i', 1},  {torch::kShort, 'i', 2},
    {torch::kInt, 'i', 4},   {torch::kLong, 'i', 8},  {torch::kHalf, 'f', 2},  {torch::kFloat, 'f', 4},
    {torch::kDouble, 'f', 8},
};

const DtypeInfo& dtype_info(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d;
  fail("cannot store dtype ", c10::toString(t), " in a .npy file");
}

std::string descr_of(torch::ScalarType t) {
  const auto& d = dtype_info(t);
  return std::string(d.size == 1 ? "|" : "<") + d.kind + std::to_string(d.size);
}

// The header is a Python dict literal, e.g. {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }.
// This parser accepts exactly the three keys numpy writes and the value types each one takes.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& what) : s_(text), what_(what) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    std::optional<std::string> d;
    std::optional<bool> f;
    std::optional<std::vector<int64_t>> sh;
    ws();
    expect('{');
    while (true) {
      ws();
      if (peek() == '}') break;
      const std::string key = str();
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (d) bad("duplicate key 'descr'");
        d = str();
      } else if (key == "fortran_order") {
        if (f) bad("duplicate key 'fortran_order'");
        f = boolean();
      } else if (key == "shape") {
        if (sh) bad("duplicate key 'shape'");
        sh = tuple();
      } else {
        bad("unexpected key '" + key + "'");
      }
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != '}') bad("expected ',' or '}'");
    }
    ++i_;
    for (; i_ < s_.size(); ++i_)
      if (!std::isspace(static_cast<unsigned char>(s_[i_]))) bad("trailing characters after the dictionary");
    if (!d || !f || !sh) bad("the dictionary must hold 'descr', 'fortran_order' and 'shape'");
    descr = *d;
    fortran = *f;
    shape = *sh;
  }

 private:
  [[noreturn]] void bad(const std::string& why) const {
    fail(what_, ": invalid .npy header (", why, " at character ", i_, ")");
  }
  char peek() const {
    if (i_ >= s_.size()) bad("unexpected end");
    return s_[i_];
  }
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string str() {
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    const size_t start = ++i_;
    while (peek() != q) {
      if (s_[i_] == '\\') bad("escapes are not supported in header strings");
      ++i_;
    }
    return s_.substr(start, i_++ - start);
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) return i_ += 4, true;
    if (s_.compare(i_, 5, "False") == 0) return i_ += 5, false;
    bad("expected True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      ws();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("expected a non-negative integer dimension");
      int64_t v = 0;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) bad("dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (i_ < s_.size() && s_[i_] == 'L') ++i_;  // Python 2 longs, as old numpy wrote them
      if (static_cast<int64_t>(out.size()) == kMaxDims) bad("more than 32 dimensions");
      out.push_back(v);
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != ')') bad("expected ',' or ')' in shape");
    }
    ++i_;
    // "(5)" is an int in Python, not a tuple; numpy always writes "(5,)".
    return out;
  }

  const std::string& s_;
  const std::string& what_;
  size_t i_ = 0;
};

torch::ScalarType parse_descr(const std::string& descr, const std::string& what) {
  if (descr.size() < 3) fail(what, ": unsupported .npy dtype '", descr, "'");
  const char order = descr[0], kind = descr[1];
  int size = 0;
  for (size_t i = 2; i < descr.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(descr[i])) || size > 1000) fail(what, ": unsupported .npy dtype '", descr, "'");
    size = size * 10 + (descr[i] - '0');
  }
  if (order == '>' && size > 1) fail(what, ": big-endian .npy data ('", descr, "') is not supported");
  if (order != '<' && order != '|' && order != '=' && order != '>') fail(what, ": unsupported .npy dtype '", descr, "'");
  if (order == '|' && size > 1) fail(what, ": dtype '", descr, "' lacks a byte order");
  for (const auto& d : kDtypes)
    if (d.kind == kind && d.size == size) return d.type;
  fail(what, ": unsupported .npy dtype '", descr, "' (supported: bool, int8-64, uint8, float16/32/64)");
}

}  // namespace

torch::Tensor parse_npy(const uint8_t* data, size_t size, const std::string& what,
                        const std::shared_ptr<MappedFile>& keep) {
  if (size < kMagicLen + 4 || std::memcmp(data, kMagic, kMagicLen) != 0) fail(what, ": not a .npy array (bad magic)");
  const int major = data[6];
  size_t hlen, start;
  if (major == 1) {
    hlen = size_t(data[8]) | size_t(data[9]) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) fail(what, ": truncated .npy header");
    hlen = size_t(data[8]) | size_t(data[9]) << 8 | size_t(data[10]) << 16 | size_t(data[11]) << 24;
    start = 12;
  } else {
    fail(what, ": unsupported .npy format version ", major, ".", int(data[7]));
  }
  if (hlen > size - start) fail(what, ": .npy header (", hlen, " bytes) runs past the end of the data");
  const std::string header(reinterpret_cast<const char*>(data + start), hlen);
  if (header.find('\0') != std::string::npos) fail(what, ": .npy header contains a NUL byte");
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  HeaderParser(header, what).parse(descr, fortran, shape);
  const auto dtype = parse_descr(descr, what);
  const uint64_t item = dtype_info(dtype).size;
  uint64_t numel = 1;
  for (auto d : shape)
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) fail(what, ": .npy shape overflows");
  uint64_t bytes;
  if (__builtin_mul_overflow(numel, item, &bytes)) fail(what, ": .npy shape overflows");
  const uint64_t avail = size - start - hlen;
  if (bytes != avail)
    fail(what, ": .npy shape ", shape_str(shape), " of '", descr, "' needs ", bytes, " bytes of data, found ", avail);
  // Fortran order stores the reversed shape in C order; reading it that way and reversing the axes
  // gives the logical array.
  std::vector<int64_t> stored(shape);
  if (fortran) std::reverse(stored.begin(), stored.end());
  const uint8_t* p = data + start + hlen;
  const auto opts = torch::TensorOptions().dtype(dtype);
  if (keep && !fortran && bytes > 0 && reinterpret_cast<uintptr_t>(p) % item == 0)
    return torch::from_blob(const_cast<uint8_t*>(p), stored, [keep](void*) {}, opts);
  auto t = torch::empty(stored, opts);
  if (bytes) std::memcpy(t.data_ptr(), p, bytes);
  if (fortran && shape.size() > 1) {
    std::vector<int64_t> perm(shape.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(perm.size() - 1 - i);
    t = t.permute(perm).contiguous();
  }
  return t;
}

std::string npy_header(torch::ScalarType dtype, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '" + descr_of(dtype) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) dict += (i ? ", " : "") + std::to_string(shape[i]);
  dict += shape.size() == 1 ? ",), }" : "), }";  // a 1-tuple is "(5,)" in Python
  const bool v2 = dict.size() + 1 + 10 > 0xFFFF;
  const size_t prefix = v2 ? 12 : 10;
  const size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  const size_t n = dict.size();
  out += static_cast<char>(n & 0xFF);
  out += static_cast<char>((n >> 8) & 0xFF);
  if (v2) {
    out += static_cast<char>((n >> 16) & 0xFF);
    out += static_cast<char>((n >> 24) & 0xFF);
  }
  return out + dict;
}

std::string encode_npy(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  std::string out = npy_header(c.scalar_type(), c.sizes().vec());
  out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return out;
}

NpzReader::NpzReader(const std::string& path) : zip_(path) {}
NpzReader::NpzReader(std::shared_ptr<MappedFile> file) : zip_(std::move(file)) {}

std::vector<std::string> NpzReader::names() const {
  std::vector<std::string> out;
  for (const auto& e : zip_.entries()) {
    const auto& n = e.name;
    out.push_back(n.size() > 4 && n.compare(n.size() - 4, 4, ".npy") == 0 ? n.substr(0, n.size() - 4) : n);
  }
  return out;
}

const ZipEntry* NpzReader::entry(const std::string& name) const {
  if (const auto* e = zip_.find(name + ".npy")) return e;
  return zip_.find(name);
}

bool NpzReader::contains(const std::string& name) const { return entry(name) != nullptr; }

torch::Tensor NpzReader::get(const std::string& name) const {
  const auto* e = entry(name);
  const std::string what = "'" + path() + "' array '" + name + "'";
  if (!e) {
    std::string have;
    for (const auto& n : names()) have += (have.empty() ? "" : ", ") + n;
    fail("'", path(), "' has no array '", name, "' (it holds: ", have.empty() ? "nothing" : have, ")");
  }
  if (e->method == 0) return parse_npy(zip_.data(*e), e->size, what, zip_.file());
  if (e->method != 8) fail(what, ": unsupported zip compression method ", e->method);
  // Deflate expands at most ~1032:1, so a larger claimed size is a corrupt or hostile archive; the
  // check also keeps the allocation below bounded by the file size.
  if (e->size / 1032 > e->compressed_size + 1) fail(what, ": claimed size ", e->size, " is impossible for its compressed size");
  std::vector<uint8_t> out(e->size);
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail(what, ": zlib initialisation failed");
  const uint8_t* src = zip_.file()->data() + e->data_offset;
  uint64_t in_left = e->compressed_size, out_done = 0;
  int rc = Z_OK;
  // zlib counts in 32-bit uInt: feed and drain in chunks so multi-GB entries work.
  while (rc == Z_OK) {
    const uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
    zs.next_in = const_cast<Bytef*>(src + (e->compressed_size - in_left));
    zs.avail_in = in_chunk;
    zs.next_out = out.data() + out_done;
    zs.avail_out = static_cast<uInt>(std::min<uint64_t>(e->size - out_done, 1u << 30));
    const uInt out_before = zs.avail_out;
    rc = inflate(&zs, Z_NO_FLUSH);
    in_left -= in_chunk - zs.avail_in;
    out_done += out_before - zs.avail_out;
    if (rc == Z_BUF_ERROR && in_left > 0 && out_done < e->size) rc = Z_OK;  // chunk boundary only
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || out_done != e->size) fail(what, ": corrupt deflate data");
  if (crc32(out.data(), out.size()) != e->crc32) fail(what, ": CRC-32 mismatch");
  return parse_npy(out.data(), out.size(), what);
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& arrays) {
  AtomicFile out(path);
  ZipWriter zip(out);
  for (const auto& [name, t] : arrays) {
    const auto bytes = encode_npy(t);
    zip.add(name + ".npy", bytes.data(), bytes.size());
  }
  zip.finish();
  out.commit();
}

torch::Tensor quantize_images(const torch::Tensor& images_nchw) {
  if (images_nchw.dim() != 4) fail("images must be (N, C, H, W), got ", shape_str(images_nchw.sizes().vec()));
  if (!torch::isFloatingType(images_nchw.scalar_type())) fail("images to quantize must be floating point in [-1, 1]");
  auto x = images_nchw.detach().to(torch::kCPU, torch::kFloat);
  return (x * 127.5f + 128.0f).clamp(0, 255).to(torch::kByte);
}

void write_npz_images(const std::string& path, const torch::Tensor& images, const torch::Tensor& labels) {
  if (images.dim() != 4) fail("images must be (N, C, H, W), got ", shape_str(images.sizes().vec()));
  NpzImageWriter npz(path, images.size(0));
  npz.add(images);
  npz.finish(labels);
}

NpzImageWriter::NpzImageWriter(const std::string& path, int64_t count) : out_(path), zip_(out_), count_(count) {
  if (count < 1) fail("an .npz of samples needs at least one image, got ", count);
}

void NpzImageWriter::add(const torch::Tensor& images) {
  const auto u8 = quantize_images(images);
  const std::vector<int64_t> chw{u8.size(1), u8.size(2), u8.size(3)};
  if (image_shape_.empty()) {
    image_shape_ = chw;
    const std::string header = npy_header(torch::kByte, {count_, chw[1], chw[2], chw[0]});
    zip_.begin("arr_0.npy", header.size() + static_cast<uint64_t>(count_ * chw[0] * chw[1] * chw[2]));
    zip_.append(header.data(), header.size());
  } else if (chw != image_shape_) {
    fail(out_.path(), ": images of shape ", shape_str(chw), " after images of shape ", shape_str(image_shape_));
  }
  if (added_ + u8.size(0) > count_) fail(out_.path(), ": more than the ", count_, " images declared");
  const auto nhwc = u8.permute({0, 2, 3, 1}).contiguous();
  zip_.append(nhwc.data_ptr<uint8_t>(), static_cast<uint64_t>(nhwc.numel()));
  added_ += u8.size(0);
}

void NpzImageWriter::finish(const torch::Tensor& labels) {
  if (added_ != count_) fail(out_.path(), ": ", added_, " images written of the ", count_, " declared");
  zip_.end();
  if (labels.defined()) {
    if (labels.dim() != 1 || labels.size(0) != count_)
      fail("write_npz_images: ", count_, " images need ", count_, " labels, got ", shape_str(labels.sizes().vec()));
    const auto lb = encode_npy(labels.to(torch::kCPU, torch::kLong));
    zip_.add("arr_1.npy", lb.data(), lb.size());
  }
  zip_.finish();
  out_.commit();
}

}  // namespace sdit

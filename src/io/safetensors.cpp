#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <vector>

#include "io/file_util.h"
#include "io/limits.h"
#include "util/error.h"

namespace sdit {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;  // writing: the header in the state dict's order

// Larger headers only come from corrupt or hostile files, and parsing them would cost memory.
constexpr uint64_t kMaxHeader = 100ull << 20;

struct DType {
  const char* name;
  torch::ScalarType type;
  int64_t size;
};

const DType kDTypes[] = {
    {"F64", torch::kDouble, 8}, {"F32", torch::kFloat, 4},  {"F16", torch::kHalf, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kLong, 8}, {"I32", torch::kInt, 4},
    {"I16", torch::kShort, 2},  {"I8", torch::kChar, 1},   {"U8", torch::kByte, 1},
    {"BOOL", torch::kBool, 1},
};

// Valid safetensors dtypes that libtorch 1.13 has no tensor type for.
const char* const kUnsupported[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};

const DType* find_dtype(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DType& dtype_of(torch::ScalarType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d;
  fail("dtype ", c10::toString(t), " cannot be stored in safetensors");
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Entry {
  std::string name;
  const DType* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

struct Reader {
  const std::string& path;
  [[noreturn]] void bad(const std::string& tensor, const std::string& why) const {
    if (tensor.empty()) fail("safetensors file '", path, "': ", why);
    fail("safetensors file '", path, "', tensor '", tensor, "': ", why);
  }

  Entry parse_entry(const std::string& name, const json& v, uint64_t data_size) const {
    if (!v.is_object()) bad(name, "header entry is not a JSON object");
    Entry e{name, nullptr, {}, 0, 0};
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) bad(name, "missing or non-string 'dtype'");
    std::string dname = dt->get<std::string>();
    e.dtype = find_dtype(dname);
    if (!e.dtype) {
      for (const char* u : kUnsupported)
        if (dname == u) bad(name, "dtype '" + dname + "' is not supported by this build");
      bad(name, "unknown dtype '" + dname + "'");
    }
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) bad(name, "missing or non-list 'shape'");
    if (sh->size() > static_cast<size_t>(kMaxTensorRank))
      bad(name, "shape has " + std::to_string(sh->size()) + " dimensions (at most " + std::to_string(kMaxTensorRank) + ")");
    int64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_integer()) bad(name, "shape " + sh->dump() + " holds a non-integer");
      if (!d.is_number_unsigned()) bad(name, "shape " + sh->dump() + " has a negative dimension");
      uint64_t u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad(name, "shape " + sh->dump() + " has a dimension too large");
      int64_t dim = static_cast<int64_t>(u);
      if (__builtin_mul_overflow(numel, dim, &numel))
        bad(name, "shape " + sh->dump() + " overflows the element count");
      e.shape.push_back(dim);
    }
    int64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, e.dtype->size, &nbytes))
      bad(name, "shape " + sh->dump() + " overflows the byte count");
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      bad(name, "'data_offsets' must be a list of two non-negative integers");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end) bad(name, "data_offsets " + off->dump() + " have begin > end");
    if (e.end > data_size)
      bad(name, "data_offsets " + off->dump() + " run past the end of the data section (" +
                    std::to_string(data_size) + " bytes); the file may be truncated");
    if (e.end - e.begin != static_cast<uint64_t>(nbytes))
      bad(name, "data_offsets " + off->dump() + " span " + std::to_string(e.end - e.begin) +
                    " bytes but dtype " + dname + " and shape " + sh->dump() + " need " +
                    std::to_string(nbytes));
    return e;
  }
};

// A first pass over the header (SAX, no tree): the header is an object of objects whose values
// are strings or short lists, so deeper nesting and longer lists are refused before a tree is
// built; it also records the tensors' order. The tree is then parsed without a callback and
// into a sorted object: nlohmann's callback parser rescans an object's members after each one,
// and ordered_json inserts each key by a linear search, both quadratic in the tensor count.
struct HeaderOutline : nlohmann::json_sax<json> {
  static constexpr int kMaxDepth = 3;  // the header, a tensor's entry, its shape list
  const Reader& r;
  std::vector<std::string> order;  // top-level keys as they appear
  int depth = 0;
  size_t innermost = 0;  // values in the current innermost list or object

  explicit HeaderOutline(const Reader& reader) : r(reader) {}
  bool value() {
    if (depth >= kMaxDepth && ++innermost > size_t(kMaxTensorRank))
      r.bad("", "header holds a list longer than " + std::to_string(kMaxTensorRank) + " values");
    return true;
  }
  bool open() {
    if (++depth > kMaxDepth) r.bad("", "header nests deeper than a tensor's shape list");
    innermost = 0;
    return true;
  }
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override { return open(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_object() override { return --depth, true; }
  bool end_array() override { return --depth, true; }
  bool key(string_t& k) override {
    if (depth == 1) order.push_back(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    r.bad("", std::string("header is not valid JSON (") + e.what() + ")");
  }
};

}  // namespace

StateDict read_safetensors(const std::string& path) { return read_safetensors(MappedFile::open(path)); }

StateDict read_safetensors(const std::shared_ptr<MappedFile>& file) {
  const std::string& path = file->path();
  Reader r{path};
  const uint64_t fsize = file->size();
  if (fsize < 8) r.bad("", "file is " + std::to_string(fsize) + " bytes, too small for a header");
  const uint64_t hlen = read_le64(file->data());
  if (hlen > kMaxHeader)
    r.bad("", "header length " + std::to_string(hlen) + " is implausible (over 100 MB); not a safetensors file?");
  if (hlen > fsize - 8)
    r.bad("", "header length " + std::to_string(hlen) + " exceeds the file size " +
                  std::to_string(fsize) + "; the file is truncated or not safetensors");
  const char* hbeg = reinterpret_cast<const char*>(file->data() + 8);
  HeaderOutline outline(r);
  json header;
  try {
    json::sax_parse(hbeg, hbeg + hlen, &outline);
    header = json::parse(hbeg, hbeg + hlen);
  } catch (const nlohmann::json::exception& e) {
    r.bad("", std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) r.bad("", "header is not a JSON object");

  const uint64_t data_size = fsize - 8 - hlen;
  StateDict sd;
  std::vector<Entry> entries;
  std::unordered_set<std::string> seen;
  for (const std::string& key : outline.order) {
    if (!seen.insert(key).second) continue;  // a repeated key: its last value counts, once
    const json& v = header.at(key);
    if (key == "__metadata__") {
      if (v.is_null()) continue;
      if (!v.is_object()) r.bad("", "__metadata__ is not a JSON object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m->is_string()) r.bad("", "__metadata__ value '" + m.key() + "' is not a string");
        sd.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    entries.push_back(r.parse_entry(key, v, data_size));
  }

  std::vector<const Entry*> by_offset;
  for (const auto& e : entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      r.bad(by_offset[i]->name, "data overlaps tensor '" + by_offset[i - 1]->name + "'");

  uint8_t* data = file->mutable_data() + 8 + hlen;
  for (const auto& e : entries) {
    auto opts = torch::TensorOptions().dtype(e.dtype->type);
    uint8_t* p = data + e.begin;
    const size_t nbytes = e.end - e.begin;
    if (e.dtype->type == torch::kBool)
      for (size_t i = 0; i < nbytes; ++i)
        if (p[i] > 1) r.bad(e.name, "BOOL data holds a byte other than 0 or 1");
    torch::Tensor t;
    if (nbytes == 0) {
      t = torch::empty(e.shape, opts);
    } else if (reinterpret_cast<uintptr_t>(p) % e.dtype->size == 0) {
      t = torch::from_blob(p, e.shape, [file](void*) {}, opts);
    } else {
      // Misaligned elements (legal in the format, rare in practice) are copied to aligned memory.
      t = torch::empty(e.shape, opts);
      std::memcpy(t.data_ptr(), p, nbytes);
    }
    sd.set(e.name, t);
  }
  return sd;
}

void write_safetensors(const std::string& path, const StateDict& sd) {
  std::vector<torch::Tensor> tensors;
  std::vector<const DType*> dtypes;
  for (const auto& k : sd.keys()) {
    if (k == "__metadata__") fail("cannot write '", path, "': tensor name '__metadata__' is reserved");
    torch::Tensor t = sd.at(k).detach().to(torch::kCPU).contiguous();
    const DType* d = nullptr;
    try {
      d = &dtype_of(t.scalar_type());
    } catch (const Error& e) {
      fail("cannot write '", path, "': tensor '", k, "': ", e.what());
    }
    tensors.push_back(t);
    dtypes.push_back(d);
  }
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return dtypes[a]->size > dtypes[b]->size; });
  std::vector<uint64_t> begin(tensors.size());
  uint64_t off = 0;
  for (size_t i : order) {
    begin[i] = off;
    off += tensors[i].numel() * dtypes[i]->size;
  }

  std::string text;
  try {
    ojson header = ojson::object();
    if (!sd.metadata.empty()) {
      ojson meta = ojson::object();
      for (const auto& [k, v] : sd.metadata) meta[k] = v;
      header["__metadata__"] = meta;
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      const uint64_t nbytes = tensors[i].numel() * dtypes[i]->size;
      header[sd.keys()[i]] = {{"dtype", dtypes[i]->name},
                              {"shape", tensors[i].sizes().vec()},
                              {"data_offsets", {begin[i], begin[i] + nbytes}}};
    }
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("cannot write '", path, "': a tensor name or metadata value is not valid UTF-8 (", e.what(), ")");
  }
  // The data section starts 8-byte aligned, so every tensor is aligned to its element size.
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile out(path);
  uint8_t len[8];
  uint64_t hlen = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(hlen >> (8 * i));
  out.write(len, 8);
  out.write(text.data(), text.size());
  for (size_t i : order) out.write(tensors[i].data_ptr(), tensors[i].numel() * dtypes[i]->size);
  out.commit();
}

}  // namespace sdit

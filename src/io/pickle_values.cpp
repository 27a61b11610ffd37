// The value side of io/pickle.h: PyValue's accessors, and PickleWriter (the protocol-2 opcodes
// write_torch_pt and the tests need). The reader is pickle.cpp.
#include "io/pickle.h"

#include <limits>

#include "util/error.h"

namespace sdit {

const PyValue* PyValue::get(const std::string& key) const {
  if (kind != Kind::Dict && kind != Kind::Record) return nullptr;
  for (const auto& kv : entries)
    if (kv.first.kind == Kind::Str && kv.first.str == key) return &kv.second;
  return nullptr;
}

std::string PyValue::type_name() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return ordered ? "OrderedDict" : "dict";
    case Kind::Tensor: return "tensor";
    case Kind::Record: return str;
  }
  return "?";
}

PickleWriter& PickleWriter::raw(uint8_t opcode) {
  out_.push_back(static_cast<char>(opcode));
  return *this;
}
PickleWriter& PickleWriter::proto(int version) {
  raw(0x80);
  return raw(static_cast<uint8_t>(version));
}
PickleWriter& PickleWriter::global(const std::string& module, const std::string& name) {
  raw('c');
  out_ += module + "\n" + name + "\n";
  return *this;
}
PickleWriter& PickleWriter::mark() { return raw('('); }
PickleWriter& PickleWriter::tuple(size_t n) {
  if (n > 3) fail("internal: PickleWriter::tuple(", n, "): use mark() and tuple_from_mark()");
  return raw(n == 0 ? ')' : static_cast<uint8_t>(0x84 + n));
}
PickleWriter& PickleWriter::tuple_from_mark() { return raw('t'); }
PickleWriter& PickleWriter::int_tuple(const std::vector<int64_t>& v) {
  if (v.size() > 3) mark();
  for (int64_t x : v) integer(x);
  return v.size() > 3 ? tuple_from_mark() : tuple(v.size());
}
PickleWriter& PickleWriter::empty_tuple() { return raw(')'); }
PickleWriter& PickleWriter::empty_dict() { return raw('}'); }
PickleWriter& PickleWriter::integer(int64_t v) {
  auto put = [&](uint64_t x, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>(x >> (8 * i)));
  };
  if (v >= 0 && v < 256) {
    raw('K');
    put(v, 1);
  } else if (v >= 0 && v < 65536) {
    raw('M');
    put(v, 2);
  } else if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
    raw('J');
    put(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
  } else {
    raw(0x8a);
    raw(8);
    put(static_cast<uint64_t>(v), 8);
  }
  return *this;
}
PickleWriter& PickleWriter::boolean(bool v) { return raw(v ? 0x88 : 0x89); }
PickleWriter& PickleWriter::none() { return raw('N'); }
PickleWriter& PickleWriter::str(const std::string& s) {
  if (s.size() > 0xFFFFFFFFull) fail("string too long to pickle");
  raw('X');
  for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>(uint64_t(s.size()) >> (8 * i)));
  out_ += s;
  return *this;
}
PickleWriter& PickleWriter::reduce() { return raw('R'); }
PickleWriter& PickleWriter::binpersid() { return raw('Q'); }
PickleWriter& PickleWriter::setitems() { return raw('u'); }
PickleWriter& PickleWriter::stop() { return raw('.'); }

}  // namespace sdit

#pragma once
// A restricted unpickler for what torch.save writes: it builds plain values and tensors and never
// executes anything. Only a fixed allow-list of globals (OrderedDict, tensor rebuilders, storage
// classes, argparse.Namespace) is accepted; every other global is refused by name.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sdit {

struct PyValue {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Tensor, Record };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string str;                               // Str, Bytes; Record: the class, "argparse.Namespace"
  std::vector<PyValue> items;                    // List, Tuple
  std::vector<std::pair<PyValue, PyValue>> entries;  // Dict in insertion order; Record attributes
  bool ordered = false;                          // Dict built from collections.OrderedDict
  torch::Tensor tensor;

  bool is_str() const { return kind == Kind::Str; }
  bool is_dict() const { return kind == Kind::Dict; }
  bool is_tensor() const { return kind == Kind::Tensor; }
  // Dict or Record entry whose key is the string `key`, or nullptr.
  const PyValue* get(const std::string& key) const;
  std::string type_name() const;  // "dict", "tensor", "argparse.Namespace", ...
};

// Resolves a persistent id ('storage', <class>, key, location, numel[, view None]) to a 1-D tensor of at least
// `numel` elements of `dtype`. Tensors are rebuilt as contiguous copies, so it may alias a map.
using StorageLoader = std::function<torch::Tensor(const std::string& key, torch::ScalarType dtype, int64_t numel)>;

// `what` names the source in error messages (e.g. "model.pt:archive/data.pkl").
// `consumed` (optional) receives the bytes read through STOP, for streams of several pickles.
// `alias_storages`: tensors are views of the loader's storages (sharing them, and a memory map the
// loader returns) instead of copies, so a multi-GB checkpoint can be converted tensor by tensor
// without first holding a copy of all of it.
PyValue unpickle(const uint8_t* data, size_t size, const std::string& what, const StorageLoader& storages,
                 size_t* consumed = nullptr, bool alias_storages = false);

// Emits protocol-2 opcodes; enough for write_torch_pt and for tests to craft pickles.
class PickleWriter {
 public:
  PickleWriter& proto(int version = 2);
  PickleWriter& global(const std::string& module, const std::string& name);
  PickleWriter& mark();
  PickleWriter& tuple(size_t n);  // the last n (at most 3) pushed items
  PickleWriter& tuple_from_mark();
  PickleWriter& int_tuple(const std::vector<int64_t>& v);
  PickleWriter& empty_tuple();
  PickleWriter& empty_dict();
  PickleWriter& integer(int64_t v);
  PickleWriter& boolean(bool v);
  PickleWriter& none();
  PickleWriter& str(const std::string& s);
  PickleWriter& reduce();
  PickleWriter& binpersid();
  PickleWriter& setitems();  // after mark() and key/value pairs
  PickleWriter& stop();
  PickleWriter& raw(uint8_t opcode);
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

}  // namespace sdit

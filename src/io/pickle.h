#pragma once
// A restricted unpickler for what torch.save writes: it builds plain values and tensors and never
// executes anything. Only a fixed allow-list of globals (OrderedDict, tensor rebuilders, storage
// classes, argparse.Namespace) is accepted; every other global is refused by name.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace sdit {

// An immutable string shared by every value that refers to it: a pickle may reference one string
// any number of times, and no reference may cost a copy.
class SharedStr {
 public:
  SharedStr() = default;
  explicit SharedStr(std::string s) : p_(std::make_shared<const std::string>(std::move(s))) {}
  const std::string& get() const { return p_ ? *p_ : empty_string(); }
  operator const std::string&() const { return get(); }
  size_t size() const { return get().size(); }
  bool empty() const { return get().empty(); }
  const char* c_str() const { return get().c_str(); }
  friend bool operator==(const SharedStr& a, const std::string& b) { return a.get() == b; }
  friend bool operator==(const SharedStr& a, const char* b) { return a.get() == b; }
  friend bool operator!=(const SharedStr& a, const std::string& b) { return a.get() != b; }
  friend bool operator!=(const SharedStr& a, const char* b) { return a.get() != b; }
  friend std::ostream& operator<<(std::ostream& os, const SharedStr& s) { return os << s.get(); }

 private:
  static const std::string& empty_string() {
    static const std::string e;
    return e;
  }
  std::shared_ptr<const std::string> p_;
};

// An immutable list shared by every value that refers to it (a read-only vector to its users).
template <typename T>
class SharedList {
 public:
  SharedList() = default;
  explicit SharedList(std::vector<T> v)
      : p_(v.empty() ? nullptr : std::make_shared<const std::vector<T>>(std::move(v))) {}
  const T* begin() const { return p_ ? p_->data() : nullptr; }
  const T* end() const { return p_ ? p_->data() + p_->size() : nullptr; }
  size_t size() const { return p_ ? p_->size() : 0; }
  bool empty() const { return size() == 0; }
  const T& operator[](size_t i) const { return (*p_)[i]; }
  const T& front() const { return p_->front(); }
  const T& back() const { return p_->back(); }

 private:
  std::shared_ptr<const std::vector<T>> p_;
};

// A value of the unpickled tree. Copies are cheap: strings, lists and dicts are shared, so an
// object the pickle references many times exists once (as in Python), and tensors are views.
struct PyValue {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Tensor, Record };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  SharedStr str;                                     // Str, Bytes; Record: the class, "argparse.Namespace"
  SharedList<PyValue> items;                         // List, Tuple
  SharedList<std::pair<PyValue, PyValue>> entries;   // Dict in insertion order; Record attributes
  bool ordered = false;                              // Dict built from collections.OrderedDict
  torch::Tensor tensor;

  bool is_str() const { return kind == Kind::Str; }
  bool is_dict() const { return kind == Kind::Dict; }
  bool is_tensor() const { return kind == Kind::Tensor; }
  // Dict or Record entry whose key is the string `key`, or nullptr.
  const PyValue* get(const std::string& key) const;
  std::string type_name() const;  // "dict", "tensor", "argparse.Namespace", ...
};

// Resolves a persistent id ('storage', <class>, key, location, numel[, view None]) to a 1-D tensor of
// exactly `numel` elements of `dtype`, called once per key. Tensors are views of it (as PyTorch keeps
// them: strides, offsets and shared storages as saved), so it may alias a map. The loader checks
// `numel` against the bytes available before allocating anything.
//
// Limits (io/limits.h): tensor extents must lie inside their storage, ranks are at most
// kMaxTensorRank, and the tree, counted per reference, at most kPickleExpansionValues values plus
// one per pickle byte; nesting at most kPickleMaxDepth. Cycles are refused.
using StorageLoader = std::function<torch::Tensor(const std::string& key, torch::ScalarType dtype, int64_t numel)>;

// `what` names the source in error messages (e.g. "model.pt:archive/data.pkl").
// `consumed` (optional) receives the bytes read through STOP, for streams of several pickles.
// Tensors alias the loader's storages, so a multi-GB checkpoint can be converted tensor by tensor
// without first holding a copy of all of it.
PyValue unpickle(const uint8_t* data, size_t size, const std::string& what, const StorageLoader& storages,
                 size_t* consumed = nullptr);

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

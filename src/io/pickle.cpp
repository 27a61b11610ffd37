#include "io/pickle.h"

#include <cstring>
#include <deque>
#include <limits>
#include <unordered_map>

#include "util/error.h"

namespace sdit {
namespace {

enum class G { OrderedDict, RebuildTensor, RebuildParameter, Storage, Namespace };

struct Node {
  enum class K { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Tensor, Record, Global, Storage };
  K kind = K::None;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;  // Str/Bytes payload; Global and Record: "module.name"; Storage: its key
  std::vector<Node*> items;
  std::vector<std::pair<Node*, Node*>> entries;
  std::unordered_map<std::string, size_t> str_index;  // so repeated string keys replace, as in Python
  bool ordered = false;
  G global = G::OrderedDict;
  torch::ScalarType dtype = torch::kFloat;
  torch::Tensor tensor;
};
using K = Node::K;

struct Allowed {
  const char* name;
  G kind;
  torch::ScalarType dtype;
};

const Allowed kAllowed[] = {
    {"collections.OrderedDict", G::OrderedDict, torch::kFloat},
    {"torch._utils._rebuild_tensor_v2", G::RebuildTensor, torch::kFloat},
    {"torch._utils._rebuild_tensor", G::RebuildTensor, torch::kFloat},  // PyTorch < 0.4 files
    {"torch._utils._rebuild_parameter", G::RebuildParameter, torch::kFloat},
    {"argparse.Namespace", G::Namespace, torch::kFloat},
    {"torch.FloatStorage", G::Storage, torch::kFloat},
    {"torch.HalfStorage", G::Storage, torch::kHalf},
    {"torch.BFloat16Storage", G::Storage, torch::kBFloat16},
    {"torch.DoubleStorage", G::Storage, torch::kDouble},
    {"torch.LongStorage", G::Storage, torch::kLong},
    {"torch.IntStorage", G::Storage, torch::kInt},
    {"torch.ShortStorage", G::Storage, torch::kShort},
    {"torch.CharStorage", G::Storage, torch::kChar},
    {"torch.ByteStorage", G::Storage, torch::kByte},
    {"torch.BoolStorage", G::Storage, torch::kBool},
};

// Deep-copying a shared DAG can blow up exponentially; real checkpoints are far below these.
constexpr int kMaxDepth = 256;
constexpr int64_t kMaxNodes = 20'000'000;

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& what, const StorageLoader& loader, bool alias)
      : p_(data), size_(size), what_(what), loader_(loader), alias_(alias) {}

  PyValue run(size_t* consumed) {
    Node* result = nullptr;
    while (!result) {
      op_pos_ = pos_;
      const uint8_t op = byte();
      result = step(op);
    }
    if (consumed) *consumed = pos_;
    int64_t budget = kMaxNodes;
    return convert(result, 0, budget);
  }

 private:
  [[noreturn]] void bad(const std::string& why) const {
    fail("cannot unpickle ", what_, " (byte ", op_pos_, "): ", why);
  }

  Node* make(K k) {
    arena_.emplace_back();
    arena_.back().kind = k;
    return &arena_.back();
  }
  Node* make_int(int64_t v) {
    Node* n = make(K::Int);
    n->i = v;
    return n;
  }
  Node* make_str(K k, std::string s) {
    Node* n = make(k);
    n->s = std::move(s);
    return n;
  }

  const uint8_t* take(uint64_t n) {
    if (n > size_ - pos_) bad("data is truncated (needs " + std::to_string(n) + " more bytes)");
    const uint8_t* r = p_ + pos_;
    pos_ += n;
    return r;
  }
  uint8_t byte() { return *take(1); }
  uint64_t le(int n) {
    const uint8_t* b = take(n);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }
  std::string bytes(uint64_t n) {
    const uint8_t* b = take(n);
    return std::string(reinterpret_cast<const char*>(b), n);
  }
  std::string line() {
    const void* nl = std::memchr(p_ + pos_, '\n', size_ - pos_);
    if (!nl) bad("unterminated GLOBAL name");
    size_t n = static_cast<const uint8_t*>(nl) - (p_ + pos_);
    std::string s = bytes(n);
    pos_ += 1;
    return s;
  }
  // Two's-complement little-endian integers, as LONG1/LONG4 store them.
  int64_t long_bytes(uint64_t n) {
    if (n > 8) bad("integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
    const uint8_t* b = take(n);
    if (n == 0) return 0;
    uint64_t v = 0;
    for (int i = static_cast<int>(n) - 1; i >= 0; --i) v = (v << 8) | b[i];
    if (n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);
    return static_cast<int64_t>(v);
  }

  void push(Node* n) { stack_.push_back(n); }
  Node* pop() {
    if (stack_.size() <= floor()) bad("stack underflow");
    Node* n = stack_.back();
    stack_.pop_back();
    return n;
  }
  Node* top() {
    if (stack_.size() <= floor()) bad("stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Node*> pop_mark() {
    if (marks_.empty()) bad("missing MARK");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Node*> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  Node* tuple_of(std::vector<Node*> items) {
    Node* t = make(K::Tuple);
    t->items = std::move(items);
    return t;
  }
  Node* memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("memo index " + std::to_string(idx) + " was never stored");
    return it->second;
  }

  void set_item(Node* d, Node* k, Node* v) {
    if (d->kind != K::Dict) bad("SETITEM(S) on a " + kind_name(d) + ", not a dict");
    if (k->kind == K::Str) {
      auto it = d->str_index.find(k->s);
      if (it != d->str_index.end()) {
        d->entries[it->second].second = v;
        return;
      }
      d->str_index[k->s] = d->entries.size();
    }
    d->entries.emplace_back(k, v);
  }

  Node* resolve_global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    for (const auto& a : kAllowed) {
      if (full == a.name) {
        Node* g = make_str(K::Global, full);
        g->global = a.kind;
        g->dtype = a.dtype;
        return g;
      }
    }
    fail("refusing to load ", what_, ": the pickle references the global '", full,
         "', which is not allowed (only tensors, dicts, OrderedDict and argparse.Namespace are "
         "loaded; nothing is ever executed)");
  }

  int64_t want_int(Node* n, const char* what) {
    if (n->kind != K::Int) bad(std::string(what) + " must be an int, found " + kind_name(n));
    return n->i;
  }

  std::vector<int64_t> want_ints(Node* n, const char* what) {
    if (n->kind != K::Tuple && n->kind != K::List) bad(std::string(what) + " must be a tuple of ints");
    std::vector<int64_t> v;
    for (Node* x : n->items) v.push_back(want_int(x, what));
    return v;
  }

  Node* rebuild_tensor(const std::vector<Node*>& a) {
    // v2 adds requires_grad, backward hooks (and metadata) after the four arguments that matter.
    if (a.size() != 4 && a.size() != 6 && a.size() != 7)
      bad("_rebuild_tensor_v2 expects 6 or 7 arguments, got " + std::to_string(a.size()));
    Node* st = a[0];
    if (st->kind != K::Storage) bad("_rebuild_tensor_v2: first argument is a " + kind_name(st) + ", not a storage");
    const int64_t offset = want_int(a[1], "storage offset");
    const std::vector<int64_t> size = want_ints(a[2], "tensor size");
    const std::vector<int64_t> stride = want_ints(a[3], "tensor stride");
    const int64_t storage_numel = st->tensor.numel();
    auto where = [&]() {
      return "tensor (storage '" + st->s + "' of " + std::to_string(storage_numel) + " elements, offset " +
             std::to_string(offset) + ", size " + shape_str(size) + ", stride " + shape_str(stride) + ")";
    };
    if (size.size() != stride.size()) bad(where() + ": size and stride differ in length");
    if (offset < 0) bad(where() + ": negative storage offset");
    int64_t numel = 1, last = offset;
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] < 0 || stride[d] < 0) bad(where() + ": negative size or stride");
      if (__builtin_mul_overflow(numel, size[d], &numel)) bad(where() + ": element count overflows");
      int64_t span = 0;
      if (size[d] > 0 && (__builtin_mul_overflow(size[d] - 1, stride[d], &span) ||
                          __builtin_add_overflow(last, span, &last)))
        bad(where() + ": extent overflows");
    }
    if (numel > 0 ? last >= storage_numel : offset > storage_numel)
      bad(where() + " reaches beyond its storage");
    Node* t = make(K::Tensor);
    if (alias_) {
      t->tensor = st->tensor.as_strided(size, stride, offset);
      return t;
    }
    t->tensor = torch::empty(size, torch::TensorOptions().dtype(st->dtype));
    if (numel > 0) t->tensor.copy_(st->tensor.as_strided(size, stride, offset));
    return t;
  }

  Node* persistent_load(Node* pid) {
    // Legacy torch.save appends view metadata: None unless the storage is a view of another one.
    if (pid->kind != K::Tuple || (pid->items.size() != 5 && pid->items.size() != 6))
      bad("persistent id is not a 5-tuple ('storage', type, key, location, numel)");
    if (pid->items.size() == 6 && pid->items[5]->kind != K::None)
      bad("storage views (legacy persistent ids with view metadata) are not supported");
    Node* tag = pid->items[0];
    Node* type = pid->items[1];
    Node* key = pid->items[2];
    if (tag->kind != K::Str || tag->s != "storage") bad("persistent id does not start with 'storage'");
    if (type->kind != K::Global || type->global != G::Storage) bad("persistent id names no storage class");
    if (key->kind != K::Str) bad("persistent id key is not a string");
    const int64_t numel = want_int(pid->items[4], "storage size");
    if (numel < 0) bad("negative storage size");
    auto it = storages_.find(key->s);
    if (it != storages_.end()) {
      if (it->second->dtype != type->dtype || it->second->tensor.numel() != numel)
        bad("storage '" + key->s + "' is referenced with different types or sizes");
      return it->second;
    }
    Node* st = make_str(K::Storage, key->s);
    st->dtype = type->dtype;
    st->tensor = loader_(key->s, type->dtype, numel);
    if (st->tensor.numel() != numel || st->tensor.scalar_type() != type->dtype)
      bad("internal: storage loader returned the wrong size for '" + key->s + "'");
    storages_[key->s] = st;
    return st;
  }

  Node* call(Node* fn, Node* args) {
    if (fn->kind != K::Global) bad("REDUCE on a " + kind_name(fn) + ", not a class or function");
    if (args->kind != K::Tuple) bad("REDUCE arguments are a " + kind_name(args) + ", not a tuple");
    switch (fn->global) {
      case G::OrderedDict: {
        if (!args->items.empty()) bad("collections.OrderedDict called with arguments");
        Node* d = make(K::Dict);
        d->ordered = true;
        return d;
      }
      case G::RebuildTensor:
        return rebuild_tensor(args->items);
      case G::RebuildParameter:
        if (args->items.size() < 1 || args->items[0]->kind != K::Tensor)
          bad("_rebuild_parameter expects a tensor as its first argument");
        return args->items[0];
      case G::Namespace:
        return make_str(K::Record, fn->s);
      case G::Storage:
        break;
    }
    bad("'" + fn->s + "' cannot be called");
  }

  void build(Node* target, Node* state) {
    // (dict_state, slot_state) pairs come from classes with __slots__.
    std::vector<Node*> states;
    if (state->kind == K::Tuple && state->items.size() == 2) states = state->items;
    else states.push_back(state);
    for (Node* s : states) {
      if (s->kind == K::None) continue;
      if (s->kind != K::Dict) bad("BUILD state is a " + kind_name(s) + ", not a dict");
      if (target->kind == K::Record) {
        for (auto& kv : s->entries) {
          if (kv.first->kind != K::Str) bad("attribute name is not a string");
          target->entries.push_back(kv);
        }
      } else if (target->kind != K::Dict && target->kind != K::Tensor) {
        // OrderedDict carries `_metadata` and tensors may carry Python attributes: neither matters here.
        bad("BUILD on a " + kind_name(target));
      }
    }
  }

  static std::string kind_name(const Node* n) {
    static const char* names[] = {"None", "bool",   "int",    "float",  "str",    "bytes",  "list",
                                  "tuple", "dict",  "tensor", "object", "global", "storage"};
    return names[static_cast<int>(n->kind)];
  }

  // Returns the result at STOP, nullptr otherwise.
  Node* step(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        uint8_t v = byte();
        if (v > 5) bad("pickle protocol " + std::to_string(v) + " is not supported");
        return nullptr;
      }
      case 0x95: le(8); return nullptr;  // FRAME: only a read-ahead hint
      case '.': {
        Node* r = pop();
        if (!stack_.empty() || !marks_.empty()) bad("STOP with items left on the stack");
        return r;
      }
      case '(': marks_.push_back(stack_.size()); return nullptr;
      case '0':
        // POP right after MARK discards the mark, as CPython does.
        if (!marks_.empty() && stack_.size() == marks_.back()) marks_.pop_back();
        else pop();
        return nullptr;
      case '1': pop_mark(); return nullptr;
      case '2': push(top()); return nullptr;
      case 'N': push(make(K::None)); return nullptr;
      case 0x88: case 0x89: {
        Node* n = make(K::Bool);
        n->b = op == 0x88;
        push(n);
        return nullptr;
      }
      case 'J': push(make_int(static_cast<int32_t>(le(4)))); return nullptr;
      case 'K': push(make_int(le(1))); return nullptr;
      case 'M': push(make_int(le(2))); return nullptr;
      case 0x8a: push(make_int(long_bytes(le(1)))); return nullptr;
      case 0x8b: push(make_int(long_bytes(le(4)))); return nullptr;
      case 'G': {
        const uint8_t* b = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | b[i];  // big-endian
        Node* n = make(K::Float);
        std::memcpy(&n->f, &bits, 8);
        push(n);
        return nullptr;
      }
      case 'X': push(make_str(K::Str, bytes(le(4)))); return nullptr;
      case 0x8c: push(make_str(K::Str, bytes(le(1)))); return nullptr;
      case 0x8d: push(make_str(K::Str, bytes(le(8)))); return nullptr;
      case 'T': {
        int32_t n = static_cast<int32_t>(le(4));
        if (n < 0) bad("negative string length");
        push(make_str(K::Str, bytes(n)));
        return nullptr;
      }
      case 'U': push(make_str(K::Str, bytes(le(1)))); return nullptr;
      case 'B': push(make_str(K::Bytes, bytes(le(4)))); return nullptr;
      case 'C': push(make_str(K::Bytes, bytes(le(1)))); return nullptr;
      case 0x8e: push(make_str(K::Bytes, bytes(le(8)))); return nullptr;
      case '}': push(make(K::Dict)); return nullptr;
      case ']': case 0x8f: push(make(K::List)); return nullptr;
      case ')': push(make(K::Tuple)); return nullptr;
      case 't': push(tuple_of(pop_mark())); return nullptr;
      case 0x85: case 0x86: case 0x87: {
        std::vector<Node*> items(op - 0x84);
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        push(tuple_of(std::move(items)));
        return nullptr;
      }
      case 'l': case 0x91: {
        Node* l = make(K::List);
        l->items = pop_mark();
        push(l);
        return nullptr;
      }
      case 'd': {
        std::vector<Node*> kv = pop_mark();
        if (kv.size() % 2) bad("DICT with an odd number of items");
        Node* d = make(K::Dict);
        for (size_t k = 0; k < kv.size(); k += 2) set_item(d, kv[k], kv[k + 1]);
        push(d);
        return nullptr;
      }
      case 'a': {
        Node* v = pop();
        Node* l = top();
        if (l->kind != K::List) bad("APPEND to a " + kind_name(l) + ", not a list");
        l->items.push_back(v);
        return nullptr;
      }
      case 'e': case 0x90: {
        std::vector<Node*> items = pop_mark();
        Node* l = top();
        if (l->kind != K::List) bad("APPENDS to a " + kind_name(l) + ", not a list");
        l->items.insert(l->items.end(), items.begin(), items.end());
        return nullptr;
      }
      case 's': {
        Node* v = pop();
        Node* k = pop();
        set_item(top(), k, v);
        return nullptr;
      }
      case 'u': {
        std::vector<Node*> kv = pop_mark();
        if (kv.size() % 2) bad("SETITEMS with an odd number of items");
        Node* d = top();
        for (size_t k = 0; k < kv.size(); k += 2) set_item(d, kv[k], kv[k + 1]);
        return nullptr;
      }
      case 'q': memo_[le(1)] = top(); return nullptr;
      case 'r': memo_[le(4)] = top(); return nullptr;
      case 0x94: memo_[memo_.size()] = top(); return nullptr;
      case 'h': push(memo_get(le(1))); return nullptr;
      case 'j': push(memo_get(le(4))); return nullptr;
      case 'c': {
        std::string module = line();
        std::string name = line();
        push(resolve_global(module, name));
        return nullptr;
      }
      case 0x93: {
        Node* name = pop();
        Node* module = pop();
        if (module->kind != K::Str || name->kind != K::Str) bad("STACK_GLOBAL needs two strings");
        push(resolve_global(module->s, name->s));
        return nullptr;
      }
      case 'R': {
        Node* args = pop();
        Node* fn = pop();
        push(call(fn, args));
        return nullptr;
      }
      case 0x81: case 0x92: {
        if (op == 0x92) pop();  // keyword arguments: Namespace/OrderedDict take none that matter
        Node* args = pop();
        Node* cls = pop();
        if (cls->kind != K::Global || (cls->global != G::Namespace && cls->global != G::OrderedDict))
          bad("NEWOBJ on '" + cls->s + "', which is not a constructible class");
        push(call(cls, args));
        return nullptr;
      }
      case 'b': {
        Node* state = pop();
        build(top(), state);
        return nullptr;
      }
      case 'Q': push(persistent_load(pop())); return nullptr;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        bad(std::string("unsupported or unknown pickle opcode ") + hex);
      }
    }
  }

  PyValue convert(const Node* n, int depth, int64_t& budget) {
    if (depth > kMaxDepth) bad("values nested too deeply (or cyclic)");
    if (--budget < 0) bad("too many values (a shared structure expands beyond limits)");
    PyValue v;
    switch (n->kind) {
      case K::None: v.kind = PyValue::Kind::None; break;
      case K::Bool: v.kind = PyValue::Kind::Bool; v.b = n->b; break;
      case K::Int: v.kind = PyValue::Kind::Int; v.i = n->i; break;
      case K::Float: v.kind = PyValue::Kind::Float; v.f = n->f; break;
      case K::Str: v.kind = PyValue::Kind::Str; v.str = n->s; break;
      case K::Bytes: v.kind = PyValue::Kind::Bytes; v.str = n->s; break;
      case K::Tensor: v.kind = PyValue::Kind::Tensor; v.tensor = n->tensor; break;
      case K::List: case K::Tuple:
        v.kind = n->kind == K::List ? PyValue::Kind::List : PyValue::Kind::Tuple;
        for (const Node* x : n->items) v.items.push_back(convert(x, depth + 1, budget));
        break;
      case K::Dict: case K::Record:
        v.kind = n->kind == K::Dict ? PyValue::Kind::Dict : PyValue::Kind::Record;
        v.ordered = n->ordered;
        v.str = n->s;
        for (const auto& kv : n->entries)
          v.entries.emplace_back(convert(kv.first, depth + 1, budget), convert(kv.second, depth + 1, budget));
        break;
      case K::Global: bad("the result holds the class '" + n->s + "' itself, not a value");
      case K::Storage: bad("the result holds a bare storage, not a tensor");
    }
    return v;
  }

  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0, op_pos_ = 0;
  std::string what_;
  const StorageLoader& loader_;
  bool alias_;
  std::deque<Node> arena_;  // nodes reference each other by pointer; cycles are harmless here
  std::vector<Node*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Node*> memo_;
  std::unordered_map<std::string, Node*> storages_;
};

}  // namespace

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

PyValue unpickle(const uint8_t* data, size_t size, const std::string& what, const StorageLoader& storages,
                 size_t* consumed, bool alias_storages) {
  return Unpickler(data, size, what, storages, alias_storages).run(consumed);
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

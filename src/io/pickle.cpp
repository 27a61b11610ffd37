#include "io/pickle.h"

#include <cstring>
#include <deque>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "io/limits.h"
#include "io/pickle_globals.h"
#include "util/error.h"

namespace sdit {
namespace {

using G = PickleGlobal;

struct Node {
  enum class K { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Tensor, Record, Global, Storage };
  K kind = K::None;
  bool b = false;
  bool ordered = false;
  bool attrs_checked = false;  // Dict used as an object's state: its keys were found to be strings
  uint8_t visit = 0;    // expansion walk: 0 new, 1 in progress, 2 done
  int height = 0;       // longest path below, counted by the expansion walk
  G global = G::OrderedDict;
  torch::ScalarType dtype = torch::kFloat;
  int64_t i = 0;
  double f = 0.0;
  uint64_t values = 0, bytes = 0;  // the subtree's size counted per reference (expansion walk)
  std::string s;  // Str/Bytes payload; Global and Record: "module.name"; Storage: its key
  std::vector<Node*> items;
  std::vector<std::pair<Node*, Node*>> entries;
  Node* state = nullptr;  // Record: the dict BUILD gave it, shared as its attributes
  torch::Tensor tensor;
};

struct PairHash {
  size_t operator()(const std::pair<const Node*, const Node*>& p) const {
    return std::hash<const void*>()(p.first) * 31 + std::hash<const void*>()(p.second);
  }
};

uint64_t add_sat(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }
using K = Node::K;


class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& what, const StorageLoader& loader)
      : p_(data), size_(size), what_(what), loader_(loader) {}

  PyValue run(size_t* consumed) {
    Node* result = nullptr;
    while (!result) {
      op_pos_ = pos_;
      const uint8_t op = byte();
      result = step(op);
    }
    if (consumed) *consumed = pos_;
    check_expansion(result);
    return convert(result);
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
  // Strings are interned: equal strings are one node, so dict keys compare by identity and a
  // string the pickle repeats is stored once.
  Node* make_str(K k, std::string s) {
    if (k == K::Str) {
      auto it = interned_.find(std::string_view(s));
      if (it != interned_.end()) return it->second;
    }
    Node* n = make(k);
    n->s = std::move(s);
    if (k == K::Str) interned_.emplace(std::string_view(n->s), n);
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
    if (k->kind == K::Str) {  // a repeated string key replaces the value, as in Python
      auto [it, fresh] = dict_index_.emplace(std::make_pair(d, k), d->entries.size());
      if (!fresh) {
        d->entries[it->second].second = v;
        return;
      }
    }
    d->entries.emplace_back(k, v);
  }

  Node* resolve_global(const std::string& module, const std::string& name) {
    // Allowed names are short: a long one is refused before it is built, or memo references to
    // long strings would make each STACK_GLOBAL cost their length.
    if (module.size() + name.size() > 64)
      fail("refusing to load ", what_, ": the pickle references a global named '", module.substr(0, 32), "...', which is not allowed");
    const std::string full = module + "." + name;
    for (const auto& a : kAllowedGlobals) {
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
    if (n->items.size() > static_cast<size_t>(kMaxTensorRank))
      bad(std::string(what) + " has " + std::to_string(n->items.size()) + " dimensions (at most " +
          std::to_string(kMaxTensorRank) + ")");
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
    // A view, as PyTorch keeps it: copying would turn a stride-0 (expanded) tensor over one
    // element into gigabytes, and tensors sharing a storage into copies.
    Node* t = make(K::Tensor);
    t->tensor = st->tensor.as_strided(size, stride, offset);
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
    auto it = storages_.find(key);  // keys are interned: one node per distinct string
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
    storages_[key] = st;
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
        // The state dict becomes the object's attributes, shared rather than copied (one state
        // applied per BUILD of many objects would otherwise copy it each time). Python applies
        // an object's state once.
        if (target->state) bad("a second BUILD state for one " + target->s);
        target->state = s;
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
      case 'N': push(constant(K::None, false)); return nullptr;
      case 0x88: case 0x89: push(constant(K::Bool, op == 0x88)); return nullptr;
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
      case ')': push(constant(K::Tuple, false)); return nullptr;
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

  // Sizes the tree as a walker that follows every reference sees it, without walking it per
  // reference: each node once, its subtree's counts summed from its children's. Refuses cycles,
  // nesting deeper than kPickleMaxDepth, and expansion beyond the limits of io/limits.h.
  void check_expansion(Node* root) {
    measure(root, 0);
    const uint64_t max_values = kPickleExpansionValues + size_;
    const uint64_t max_bytes = kPickleExpansionBytes + kPickleExpansionBytesPerByte * size_;
    if (root->values > max_values || root->bytes > max_bytes)
      bad("shared references expand to " + count_str(root->values) + " values and " + count_str(root->bytes) +
          " string bytes; a pickle of " + std::to_string(size_) + " bytes may hold at most " +
          std::to_string(max_values) + " and " + std::to_string(max_bytes));
  }
  static std::string count_str(uint64_t v) { return v == UINT64_MAX ? "more than 2^64" : std::to_string(v); }

  void measure(Node* n, int depth) {
    if (n->visit == 2) return;
    if (n->visit == 1) bad("the structure contains itself (a cycle), which no checkpoint does");
    if (depth > kPickleMaxDepth) bad("values nested more than " + std::to_string(kPickleMaxDepth) + " deep");
    n->visit = 1;
    uint64_t values = 1, bytes = n->s.size();
    int height = 0;
    auto add = [&](Node* c) {
      measure(c, depth + 1);
      values = add_sat(values, c->values);
      bytes = add_sat(bytes, c->bytes);
      height = std::max(height, c->height + 1);
    };
    for (Node* c : n->items) add(c);
    for (auto& kv : n->entries) {
      add(kv.first);
      add(kv.second);
    }
    if (Node* st = n->state) {
      add(st);
      if (!st->attrs_checked)
        for (auto& kv : st->entries)
          if (kv.first->kind != K::Str) bad("attribute name is not a string");
      st->attrs_checked = true;
    }
    if (height > kPickleMaxDepth) bad("values nested more than " + std::to_string(kPickleMaxDepth) + " deep");
    n->values = values;
    n->bytes = bytes;
    n->height = height;
    n->visit = 2;
  }

  // Each node becomes one PyValue, shared by every reference to it; check_expansion has bounded
  // the depth, so the recursion is too.
  PyValue convert(const Node* n) {
    auto done = converted_.find(n);
    if (done != converted_.end()) return done->second;
    PyValue v;
    switch (n->kind) {
      case K::None: v.kind = PyValue::Kind::None; break;
      case K::Bool: v.kind = PyValue::Kind::Bool; v.b = n->b; break;
      case K::Int: v.kind = PyValue::Kind::Int; v.i = n->i; break;
      case K::Float: v.kind = PyValue::Kind::Float; v.f = n->f; break;
      case K::Str: v.kind = PyValue::Kind::Str; v.str = SharedStr(n->s); break;
      case K::Bytes: v.kind = PyValue::Kind::Bytes; v.str = SharedStr(n->s); break;
      case K::Tensor: v.kind = PyValue::Kind::Tensor; v.tensor = n->tensor; break;
      case K::List: case K::Tuple: {
        v.kind = n->kind == K::List ? PyValue::Kind::List : PyValue::Kind::Tuple;
        std::vector<PyValue> items;
        items.reserve(n->items.size());
        for (const Node* x : n->items) items.push_back(convert(x));
        v.items = SharedList<PyValue>(std::move(items));
        break;
      }
      case K::Dict: case K::Record: {
        v.kind = n->kind == K::Dict ? PyValue::Kind::Dict : PyValue::Kind::Record;
        v.ordered = n->ordered;
        v.str = SharedStr(n->s);
        std::vector<std::pair<PyValue, PyValue>> entries;
        entries.reserve(n->entries.size());
        for (const auto& kv : n->entries) entries.emplace_back(convert(kv.first), convert(kv.second));
        v.entries = SharedList<std::pair<PyValue, PyValue>>(std::move(entries));
        if (n->state) v.entries = convert(n->state).entries;  // a Record's attributes: its state, shared
        break;
      }
      case K::Global: bad("the result holds the class '" + n->s + "' itself, not a value");
      case K::Storage: bad("the result holds a bare storage, not a tensor");
    }
    converted_.emplace(n, v);
    return v;
  }

  // None, True, False and () are immutable: one node each, however often the pickle pushes them.
  Node* constant(K k, bool b) {
    Node*& c = k == K::None ? none_ : k == K::Tuple ? empty_tuple_ : b ? true_ : false_;
    if (!c) {
      c = make(k);
      c->b = b;
    }
    return c;
  }

  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0, op_pos_ = 0;
  std::string what_;
  const StorageLoader& loader_;
  std::deque<Node> arena_;  // nodes reference each other by pointer; cycles are harmless here
  std::vector<Node*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Node*> memo_;
  std::unordered_map<const Node*, Node*> storages_;  // by key node
  std::unordered_map<std::string_view, Node*> interned_;  // views of the nodes' own strings
  std::unordered_map<std::pair<const Node*, const Node*>, size_t, PairHash> dict_index_;  // (dict, str key) -> entry
  std::unordered_map<const Node*, PyValue> converted_;
  Node *none_ = nullptr, *true_ = nullptr, *false_ = nullptr, *empty_tuple_ = nullptr;
};

}  // namespace

PyValue unpickle(const uint8_t* data, size_t size, const std::string& what, const StorageLoader& storages,
                 size_t* consumed) {
  return Unpickler(data, size, what, storages).run(consumed);
}

}  // namespace sdit

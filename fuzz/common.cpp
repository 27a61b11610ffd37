// The pieces every fuzz target links (CMakeLists.txt adds this file to each fuzz_*.cpp).
#include "common.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace sdit::fuzz {

void unexpected(const char* what, const std::string& detail) {
  std::fprintf(stderr, "FUZZ FINDING: %s: %s\n", what, detail.c_str());
  std::abort();
}

void write_seed(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream f(dir + "/" + name, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) unexpected("cannot write seed", dir + "/" + name);
}

void check_tensor(const torch::Tensor& t) {
  if (!t.defined()) unexpected("an undefined tensor", "");
  if (t.device() != torch::kCPU) unexpected("a tensor off the CPU", t.device().str());
  if (t.numel() == 0) return;
  int64_t first = t.storage_offset(), last = first;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.stride(d) < 0) unexpected("a negative stride", std::to_string(t.stride(d)));
    last += (t.size(d) - 1) * t.stride(d);
  }
  const auto esize = static_cast<int64_t>(t.element_size());
  const auto nbytes = static_cast<int64_t>(t.storage().nbytes());
  if (first < 0 || (last + 1) * esize > nbytes)
    unexpected("a tensor reaching beyond its storage", "elements " + std::to_string(first) + ".." +
                                                          std::to_string(last) + " of " + std::to_string(nbytes) + " bytes");
  const auto* base = static_cast<const volatile uint8_t*>(t.storage().data());
  uint8_t sink = base[first * esize] ^ base[(last + 1) * esize - 1];
  (void)sink;
}

uint64_t check_value(const PyValue& v) {
  uint64_t n = 1;
  if (v.is_tensor()) check_tensor(v.tensor);
  for (const auto& x : v.items) n += check_value(x);
  for (const auto& kv : v.entries) n += check_value(kv.first) + check_value(kv.second);
  return n;
}

void check_state_dict(const StateDict& sd) {
  for (const auto& k : sd.keys()) check_tensor(sd.at(k));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  if (const char* dir = std::getenv("SPARSEDIT_FUZZ_WRITE_SEEDS")) {
    std::filesystem::create_directories(dir);
    try {
      sdit::fuzz::write_seeds(dir);
    } catch (const std::exception& e) {
      sdit::fuzz::unexpected("writing seeds failed", e.what());
    }
    std::exit(0);
  }
  return 0;
}

namespace sdit::fuzz {
namespace {

// _rebuild_tensor_v2(storage(key, numel), 0, size, stride, False, OrderedDict()), protocol 2 opcodes.
void tensor(PickleWriter& w, const std::string& key, int64_t numel, const std::vector<int64_t>& size,
            const std::vector<int64_t>& stride) {
  w.global("torch._utils", "_rebuild_tensor_v2").mark();
  w.mark().str("storage").global("torch", "FloatStorage").str(key).str("cpu").integer(numel).tuple_from_mark().binpersid();
  w.integer(0).int_tuple(size).int_tuple(stride).boolean(false);
  w.global("collections", "OrderedDict").empty_tuple().reduce().tuple_from_mark().reduce();
}

void float_op(PickleWriter& w, double v) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, 8);
  w.raw('G');
  for (int i = 7; i >= 0; --i) w.raw(static_cast<uint8_t>(bits >> (8 * i)));  // big-endian
}

}  // namespace

std::string seed_checkpoint_pickle(int protocol) {
  PickleWriter w;
  w.proto(protocol);
  if (protocol >= 4)  // FRAME: a read-ahead hint, its length unchecked by readers
    for (int i = 0; i < 9; ++i) w.raw(i == 0 ? 0x95 : 0);
  w.empty_dict().raw('q').raw(0).mark();
  w.str("model").global("collections", "OrderedDict").empty_tuple().reduce().raw('q').raw(1).mark();
  w.str("w");
  tensor(w, "0", 16, {4, 4}, {4, 1});
  w.str("w_t");
  tensor(w, "0", 16, {4, 4}, {1, 4});
  w.str("b");
  tensor(w, "1", 4, {4}, {1});
  w.str("expanded");
  tensor(w, "1", 4, {3, 4}, {0, 1});
  w.setitems();
  w.str("args");
  if (protocol >= 4) {
    w.raw(0x8c).raw(8).raw('a').raw('r').raw('g').raw('p').raw('a').raw('r').raw('s').raw('e').raw(0x94);
    w.raw(0x8c).raw(9);
    for (char c : std::string("Namespace")) w.raw(static_cast<uint8_t>(c));
    w.raw(0x94).raw(0x93).raw(0x94).empty_tuple().raw(0x81).raw(0x94);
  } else {
    w.global("argparse", "Namespace").empty_tuple().reduce();
  }
  w.empty_dict().mark().str("lr");
  float_op(w, 1e-4);
  w.str("model").str("DiT-XL/2").str("depth").integer(28).str("big").integer(int64_t(1) << 40);
  w.str("neg").integer(-5).str("flag").boolean(true).str("none").none();
  w.str("list").raw(']').mark().integer(1).integer(2).raw('e');
  w.str("tuple").integer(1).integer(2).tuple(2).str("bytes").raw('C').raw(3).raw('a').raw('b').raw('c');
  w.setitems().raw('b');
  w.str("model_again").raw('h').raw(1);
  w.str("steps").raw(0x8a).raw(2).raw(0x10).raw(0x27);
  w.setitems().stop();
  return w.bytes();
}

std::vector<std::pair<std::string, std::string>> seed_storages() {
  std::string s0(64, '\0'), s1(16, '\0');
  for (int i = 0; i < 16; ++i) {
    const float v = 0.5f * i;
    std::memcpy(&s0[4 * i], &v, 4);
  }
  for (int i = 0; i < 4; ++i) {
    const float v = -1.0f * i;
    std::memcpy(&s1[4 * i], &v, 4);
  }
  return {{"0", s0}, {"1", s1}};
}

}  // namespace sdit::fuzz

#include "io/torch_pt.h"

#include <cstring>
#include <fstream>

#include "io/file_util.h"
#include "io/zip.h"
#include "util/error.h"

namespace sdit {
namespace {

struct StorageName {
  torch::ScalarType type;
  const char* name;
};

const StorageName kStorageNames[] = {
    {torch::kFloat, "FloatStorage"}, {torch::kHalf, "HalfStorage"},   {torch::kBFloat16, "BFloat16Storage"},
    {torch::kDouble, "DoubleStorage"}, {torch::kLong, "LongStorage"}, {torch::kInt, "IntStorage"},
    {torch::kShort, "ShortStorage"}, {torch::kChar, "CharStorage"},  {torch::kByte, "ByteStorage"},
    {torch::kBool, "BoolStorage"},
};

const char* storage_name(torch::ScalarType t, const std::string& path, const std::string& key) {
  for (const auto& s : kStorageNames)
    if (s.type == t) return s.name;
  fail("cannot write '", path, "': tensor '", key, "' has dtype ", c10::toString(t),
       ", which this writer does not support");
}

const char kLegacyHint[] =
    "legacy torch.save format is not supported; re-save with torch.save(obj, f) from PyTorch >= 1.6";

}  // namespace

bool is_legacy_torch_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char c = 0;
  return f.get(c) && static_cast<uint8_t>(c) == 0x80;
}

PyValue read_torch_pt(const std::string& path) {
  auto file = MappedFile::open(path);
  if (file->size() >= 1 && file->data()[0] == 0x80) fail("'", path, "': ", kLegacyHint);
  if (file->size() < 4 || std::memcmp(file->data(), "PK", 2) != 0)
    fail("'", path, "' is not a torch.save checkpoint (no zip signature)");
  ZipReader zip(file);

  // torch.save puts everything under one folder whose name varies ("archive", the file stem, ...).
  const ZipEntry* pkl = nullptr;
  std::string prefix;
  for (const auto& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    const bool top = e.name == "data.pkl" ||
                     (slash != std::string::npos && e.name.compare(slash + 1, std::string::npos, "data.pkl") == 0);
    if (!top) continue;
    if (pkl) fail("'", path, "' holds more than one data.pkl ('", pkl->name, "', '", e.name, "')");
    pkl = &e;
    prefix = e.name.substr(0, e.name.size() - 8);
  }
  if (!pkl) fail("'", path, "' is a zip archive without data.pkl, so not a torch.save checkpoint");
  if (zip.find(prefix + "constants.pkl"))
    fail("'", path, "' is a TorchScript archive (torch.jit.save); save the model's state_dict() with torch.save instead");
  if (const ZipEntry* bo = zip.find(prefix + "byteorder")) {
    std::string order(reinterpret_cast<const char*>(zip.data(*bo)), bo->size);
    if (order != "little") fail("'", path, "' stores ", order, "-endian data, which is not supported");
  }

  StorageLoader loader = [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    const std::string name = prefix + "data/" + key;
    const ZipEntry* e = zip.find(name);
    if (!e) fail("'", path, "': storage '", key, "' referenced by data.pkl is missing (no entry '", name, "')");
    const int64_t esize = static_cast<int64_t>(c10::elementSize(dtype));
    int64_t need = 0;
    if (__builtin_mul_overflow(numel, esize, &need)) fail("'", path, "': storage '", key, "' size overflows");
    if (e->size < static_cast<uint64_t>(need))
      fail("'", path, "': storage '", key, "' holds ", e->size, " bytes but ", numel, " elements of ",
           c10::toString(dtype), " need ", need);
    auto opts = torch::TensorOptions().dtype(dtype);
    const uint8_t* p = zip.data(*e);
    if (numel == 0) return torch::empty({0}, opts);
    if (reinterpret_cast<uintptr_t>(p) % esize != 0) {
      torch::Tensor t = torch::empty({numel}, opts);
      std::memcpy(t.data_ptr(), p, need);
      return t;
    }
    auto keep = zip.file();
    return torch::from_blob(const_cast<uint8_t*>(p), {numel}, [keep](void*) {}, opts);
  };
  const uint8_t* bytes = zip.data_checked(*pkl);
  return unpickle(bytes, pkl->size, "'" + path + "' (" + pkl->name + ")", loader);
}

void write_torch_pt(const std::string& path, const StateDict& sd) {
  std::vector<torch::Tensor> tensors;
  PickleWriter w;
  w.proto(2).global("collections", "OrderedDict").empty_tuple().reduce();
  const auto& keys = sd.keys();
  for (size_t i = 0; i < keys.size(); ++i) {
    torch::Tensor t = sd.at(keys[i]).detach().to(torch::kCPU).contiguous();
    const char* sname = storage_name(t.scalar_type(), path, keys[i]);
    tensors.push_back(t);
    // pickle batches SETITEMS by 1000, as CPython's pickler does.
    if (i % 1000 == 0) w.mark();
    w.str(keys[i]).global("torch._utils", "_rebuild_tensor_v2").mark();
    w.mark().str("storage").global("torch", sname).str(std::to_string(i)).str("cpu").integer(t.numel());
    w.tuple_from_mark().binpersid();
    w.integer(0).int_tuple(t.sizes().vec()).int_tuple(t.strides().vec()).boolean(false);
    w.global("collections", "OrderedDict").empty_tuple().reduce();
    w.tuple_from_mark().reduce();
    if (i % 1000 == 999 || i + 1 == keys.size()) w.setitems();
  }
  w.stop();

  AtomicFile out(path);
  ZipWriter zip(out);
  const std::string prefix = "archive/";
  zip.add(prefix + "data.pkl", w.bytes().data(), w.bytes().size());
  zip.add(prefix + "byteorder", "little", 6);
  for (size_t i = 0; i < tensors.size(); ++i)
    zip.add(prefix + "data/" + std::to_string(i), tensors[i].data_ptr(), tensors[i].nbytes());
  zip.add(prefix + "version", "3\n", 2);
  zip.finish();
  out.commit();
}

}  // namespace sdit

#include "io/torch_pt.h"

#include <cstring>
#include <map>

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

// numel elements of dtype at p inside the mapped file: a view that keeps the map alive, or a copy
// when p is not aligned for the dtype. The unpickler's tensors are views of it. The caller has
// checked that the bytes lie inside the file.
torch::Tensor mapped_storage(const std::shared_ptr<MappedFile>& file, const uint8_t* p, torch::ScalarType dtype,
                             int64_t numel) {
  auto opts = torch::TensorOptions().dtype(dtype);
  if (numel == 0) return torch::empty({0}, opts);
  if (reinterpret_cast<uintptr_t>(p) % c10::elementSize(dtype) != 0) {
    torch::Tensor t = torch::empty({numel}, opts);
    std::memcpy(t.data_ptr(), p, t.nbytes());
    return t;
  }
  return torch::from_blob(const_cast<uint8_t*>(p), {numel}, [keep = file](void*) {}, opts);
}

// Legacy torch.save (before PyTorch 1.6, still how e.g. pytorch-fid's Inception weights ship) is a
// stream: pickles of the magic number, the protocol version (1001), sys_info and the object, a
// pickle of the storage keys, then per key an int64 element count and the raw bytes. The object
// names its storages before the stream says where they lie, so it is unpickled twice: once to
// learn each storage's dtype and size, once to rebuild the tensors from the mapped bytes.
const uint8_t kLegacyMagic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
constexpr int64_t kLegacyProtocol = 1001;

PyValue read_legacy_torch_pt(const std::shared_ptr<MappedFile>& file, const std::string& path) {
  const uint8_t* d = file->data();
  const size_t n = file->size();
  size_t pos = 2;  // PROTO n
  if (n < 2 + sizeof kLegacyMagic || std::memcmp(d + pos, kLegacyMagic, sizeof kLegacyMagic) != 0)
    fail("'", path, "' is a pickle without torch.save's magic number, so not a torch.save checkpoint");
  pos += sizeof kLegacyMagic;
  const StorageLoader no_storages = [&](const std::string& key, torch::ScalarType, int64_t) -> torch::Tensor {
    fail("'", path, "': storage '", key, "' referenced outside the object pickle");
  };
  auto next = [&](const char* part, const StorageLoader& loader) {
    size_t used = 0;
    PyValue v = unpickle(d + pos, n - pos, "'" + path + "' (" + part + ")", loader, &used);
    pos += used;
    return v;
  };
  const PyValue proto = next("protocol version", no_storages);
  if (proto.kind != PyValue::Kind::Int || proto.i != kLegacyProtocol)
    fail("'", path, "': unsupported legacy torch.save protocol version");
  const PyValue info = next("sys_info", no_storages);
  const PyValue* little = info.get("little_endian");
  if (!little || little->kind != PyValue::Kind::Bool || !little->b)
    fail("'", path, "' stores big-endian data, which is not supported");

  struct Storage {
    torch::ScalarType dtype;
    int64_t numel;
    size_t offset = 0;
    bool placed = false;
  };
  std::map<std::string, Storage> storages;
  const size_t object_pos = pos;
  // The first pass learns each storage's dtype and size. Its tensors live on the meta device,
  // which checks every view against its storage but allocates nothing: a size claimed by the
  // pickle is only believed once the stream has shown the bytes (below).
  next("object", [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    int64_t bytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(c10::elementSize(dtype)), &bytes) ||
        static_cast<uint64_t>(bytes) > n - pos)
      fail("'", path, "': storage '", key, "' claims ", numel, " elements of ", c10::toString(dtype),
           ", more than the ", n - pos, " bytes left in the file");
    storages[key] = Storage{dtype, numel};
    return torch::empty({numel}, torch::TensorOptions().dtype(dtype).device(torch::kMeta));
  });
  const PyValue keys = next("storage keys", no_storages);
  if (keys.kind != PyValue::Kind::List) fail("'", path, "': the storage key list is a ", keys.type_name());
  for (const auto& k : keys.items) {
    if (!k.is_str()) fail("'", path, "': a storage key is a ", k.type_name(), ", not a string");
    auto it = storages.find(k.str);
    if (it == storages.end()) fail("'", path, "': storage '", k.str, "' is stored but never referenced");
    Storage& st = it->second;
    if (n - pos < 8) fail("'", path, "' is truncated in the header of storage '", k.str, "'");
    int64_t count = 0;
    std::memcpy(&count, d + pos, 8);
    pos += 8;
    const int64_t esize = static_cast<int64_t>(c10::elementSize(st.dtype));
    int64_t bytes = 0;
    if (count != st.numel || __builtin_mul_overflow(count, esize, &bytes))
      fail("'", path, "': storage '", k.str, "' holds ", count, " elements but is used as ", st.numel);
    if (static_cast<uint64_t>(bytes) > n - pos)
      fail("'", path, "' is truncated: storage '", k.str, "' needs ", bytes, " bytes, ", n - pos, " remain");
    st.offset = pos;
    st.placed = true;
    pos += static_cast<size_t>(bytes);
  }
  for (const auto& [key, st] : storages)
    if (!st.placed) fail("'", path, "': storage '", key, "' is referenced but its data is missing");

  pos = object_pos;
  return next("object", [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    return mapped_storage(file, d + storages.at(key).offset, dtype, numel);
  });
}

}  // namespace

PyValue read_torch_pt(const std::string& path) { return read_torch_pt(MappedFile::open(path)); }

PyValue read_torch_pt(const std::shared_ptr<MappedFile>& file) {
  const std::string& path = file->path();
  if (file->size() >= 1 && file->data()[0] == 0x80) return read_legacy_torch_pt(file, path);
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
    if (bo->size > 16) fail("'", path, "': the byteorder entry holds ", bo->size, " bytes, not \"little\" or \"big\"");
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
    return mapped_storage(zip.file(), zip.data(*e), dtype, numel);
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

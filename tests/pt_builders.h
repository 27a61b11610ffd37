#pragma once
// Byte builders for torch.save files, shared by the tests and the fuzz targets' seeds: the legacy
// (pre-1.6) stream, a zip archive around a given data.pkl, and a one-tensor pickle.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/pickle.h"
#include "io/state_dict.h"
#include "io/zip.h"

namespace sdit {

// The pre-1.6 torch.save stream as PyTorch writes it (pytorch-fid's Inception weights are one):
// magic, protocol, sys_info and object pickles, the storage key list, then count + bytes per key.
// claimed_numel >= 0 replaces every storage's element count in the object pickle (a lie).
inline std::string legacy_pt_bytes(const StateDict& sd, const char* module = "torch",
                                   const char* storage_class = "FloatStorage", int64_t claimed_numel = -1) {
  std::string out("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  out += PickleWriter().proto(2).integer(1001).stop().bytes();
  PickleWriter info;
  info.proto(2).empty_dict().mark().str("protocol_version").integer(1001).str("little_endian").boolean(true);
  out += info.str("type_sizes").empty_dict().setitems().stop().bytes();
  PickleWriter obj, keys;
  obj.proto(2).global("collections", "OrderedDict").empty_tuple().reduce().mark();
  keys.proto(2).raw(']').mark();
  std::string data;
  for (size_t i = 0; i < sd.keys().size(); ++i) {
    const torch::Tensor t = sd.at(sd.keys()[i]).contiguous();
    obj.str(sd.keys()[i]).global("torch._utils", "_rebuild_tensor_v2").mark();
    obj.mark().str("storage").global(module, storage_class).str("k" + std::to_string(i)).str("cuda:0");
    obj.integer(claimed_numel >= 0 ? claimed_numel : t.numel()).none().tuple_from_mark().binpersid();
    obj.integer(0).int_tuple(t.sizes().vec()).int_tuple(t.strides().vec()).boolean(false);
    obj.global("collections", "OrderedDict").empty_tuple().reduce().tuple_from_mark().reduce();
    keys.str("k" + std::to_string(i));
    const int64_t n = t.numel();
    data.append(reinterpret_cast<const char*>(&n), 8);
    data.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  }
  out += obj.setitems().stop().bytes();
  out += keys.raw('e').stop().bytes();
  return out + data;
}

// A torch.save-style zip holding `pickle` as archive/data.pkl plus raw storages archive/data/<key>.
inline std::string pt_archive_bytes(const std::string& pickle,
                                    const std::vector<std::pair<std::string, std::string>>& storages = {}) {
  std::string out;
  ZipWriter zip(out);
  zip.add("archive/data.pkl", pickle.data(), pickle.size());
  for (const auto& [k, v] : storages) zip.add("archive/data/" + k, v.data(), v.size());
  zip.add("archive/version", "3\n", 2);
  zip.finish();
  return out;
}

// OrderedDict{'w': _rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())}.
inline PickleWriter tensor_pickle(const std::string& key, int64_t numel, const std::vector<int64_t>& size,
                                  const std::vector<int64_t>& stride, int64_t offset = 0,
                                  const char* storage_class = "FloatStorage") {
  PickleWriter w;
  w.proto(2).global("collections", "OrderedDict").empty_tuple().reduce().mark();
  w.str("w").global("torch._utils", "_rebuild_tensor_v2").mark();
  w.mark().str("storage").global("torch", storage_class).str(key).str("cpu").integer(numel).tuple_from_mark().binpersid();
  w.integer(offset).int_tuple(size).int_tuple(stride).boolean(false);
  w.global("collections", "OrderedDict").empty_tuple().reduce().tuple_from_mark().reduce();
  w.setitems().stop();
  return w;
}

}  // namespace sdit

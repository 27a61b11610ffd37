#include "io/weight_files.h"

#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "io/file_util.h"
#include "io/safetensors.h"
#include "io/torch_pt.h"
#include "util/error.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux >= 5.4; older headers lack the name
#endif

namespace sdit {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "safetensors", "torch", or "" for an extension no reader handles.
std::string format_of(const std::string& file) {
  if (ends_with(file, ".safetensors")) return "safetensors";
  if (ends_with(file, ".bin") || ends_with(file, ".pt") || ends_with(file, ".pth")) return "torch";
  return "";
}

WeightFiles from_index(const std::string& source, const std::string& index_path) {
  WeightFiles w;
  w.source = source;
  w.index_path = index_path;
  w.index = read_sharded_index(index_path);
  for (const auto& shard : w.index->shards) {
    const std::string f = format_of(shard);
    if (f.empty())
      fail("sharded-checkpoint index '", index_path, "' names shard '", shard,
           "', which is neither .safetensors nor a torch.save .bin/.pt file");
    if (!w.format.empty() && w.format != f)
      fail("sharded-checkpoint index '", index_path, "' mixes safetensors and torch.save shards");
    w.format = f;
    w.files.push_back(shard_path(index_path, shard));
  }
  return w;
}

// The tensors of a torch.save file holding a flat {name: tensor} dict (what save_pretrained
// writes), as views of the file's map.
void visit_torch_file(const std::string& file, const std::function<void(const std::string&, const torch::Tensor&)>& each) {
  const PyValue v = read_torch_pt(file);
  if (!v.is_dict()) fail("'", file, "' holds a ", v.type_name(), ", not a state dict of named tensors");
  for (const auto& [key, value] : v.entries) {
    if (!key.is_str()) fail("'", file, "': a state-dict key is a ", key.type_name(), ", not a string");
    if (!value.is_tensor())
      fail("'", file, "': entry '", key.str, "' is a ", value.type_name(), ", not a tensor");
    each(key.str, value.tensor);
  }
}

}  // namespace

WeightFiles find_weight_files(const std::string& path, const WeightFileNames& names) {
  if (is_directory(path)) {
    const fs::path dir(path);
    const std::string candidates[] = {names.safetensors, names.safetensors + ".index.json", names.torch,
                                      names.torch + ".index.json"};
    for (const auto& c : candidates) {
      const std::string p = (dir / c).string();
      if (!fs::exists(p)) continue;
      if (ends_with(c, ".index.json")) return from_index(path, p);
      WeightFiles w{path, {p}, std::nullopt, "", format_of(c)};
      return w;
    }
    fail("no weights in '", path, "': looked for ", candidates[0], ", ", candidates[1], ", ", candidates[2], " and ",
         candidates[3]);
  }
  if (!fs::exists(path)) fail("weights '", path, "' do not exist");
  if (ends_with(path, ".index.json")) return from_index(path, path);
  const std::string f = format_of(path);
  if (f.empty()) fail("'", path, "': not a weight file (.safetensors, .bin, .pt, .pth or *.index.json) or folder");
  return WeightFiles{path, {path}, std::nullopt, "", f};
}

void release_tensor_pages(const torch::Tensor& t) {
  if (!t.defined() || !t.has_storage() || t.device().type() != torch::kCPU) return;
  const auto& st = t.storage();
  const auto begin = reinterpret_cast<uintptr_t>(st.data());
  const uintptr_t end = begin + st.nbytes();
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  // Only whole pages inside the storage: the neighbours' bytes are not ours to drop.
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
}

void visit_weight_tensors(const WeightFiles& files, const TensorVisitor& visit) {
  std::map<std::string, std::string> found_in;  // tensor name -> file
  for (size_t i = 0; i < files.files.size(); ++i) {
    const std::string& file = files.files[i];
    std::set<std::string> here;
    auto each = [&](const std::string& name, const torch::Tensor& t) {
      auto [it, fresh] = found_in.emplace(name, file);
      if (!fresh) fail("tensor '", name, "' is stored twice: in '", it->second, "' and in '", file, "'");
      here.insert(name);
      visit(name, t);
      release_tensor_pages(t);
    };
    if (format_of(file) == "safetensors") {
      const StateDict sd = read_safetensors(file);
      for (const auto& k : sd.keys()) each(k, sd.at(k));
    } else {
      visit_torch_file(file, each);
    }
    if (!files.index) continue;
    const std::string& shard = files.index->shards.at(i);  // files[i] is shard i (from_index)
    for (const auto& [name, s] : files.index->weight_map)
      if (s == shard && !here.count(name))
        fail("sharded-checkpoint index '", files.index_path, "' maps tensor '", name, "' to '", s,
             "', which does not contain it");
  }
}

}  // namespace sdit

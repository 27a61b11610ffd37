#include "io/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "io/file_util.h"
#include "io/safetensors.h"
#include "io/torch_pt.h"
#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

json to_json(const PyValue& v, int depth) {
  if (depth > 64) return "<nested too deeply>";
  using K = PyValue::Kind;
  switch (v.kind) {
    case K::None: return nullptr;
    case K::Bool: return v.b;
    case K::Int: return v.i;
    case K::Float: return v.f;
    case K::Str: return v.str.get();
    case K::Bytes: return "<bytes of length " + std::to_string(v.str.size()) + ">";
    case K::Tensor:
      return "<tensor " + std::string(c10::toString(v.tensor.scalar_type())) + " " +
             shape_str(v.tensor.sizes().vec()) + ">";
    case K::List: case K::Tuple: {
      json a = json::array();
      for (const auto& x : v.items) a.push_back(to_json(x, depth + 1));
      return a;
    }
    case K::Dict: case K::Record: {
      bool str_keys = std::all_of(v.entries.begin(), v.entries.end(), [](const auto& kv) { return kv.first.is_str(); });
      if (!str_keys) {
        json a = json::array();
        for (const auto& kv : v.entries) a.push_back({to_json(kv.first, depth + 1), to_json(kv.second, depth + 1)});
        return a;
      }
      json o = json::object();
      for (const auto& kv : v.entries) o[kv.first.str] = to_json(kv.second, depth + 1);
      return o;
    }
  }
  return nullptr;
}

StateDict from_torch_pt(const std::string& path) {
  PyValue root = read_torch_pt(path);
  if (!root.is_dict())
    fail("'", path, "' holds a ", root.type_name(), ", not a state dict (a dict of tensors)");
  // DiT's find_model prefers the EMA weights of a train.py checkpoint.
  const PyValue* weights = &root;
  std::string prefix;
  for (const char* k : {"ema", "model", "state_dict"}) {
    const PyValue* v = root.get(k);
    if (v && !v->is_tensor()) {
      weights = v;
      prefix = std::string(k) + ".";
      break;
    }
  }
  if (!weights->is_dict())
    fail("'", path, "': '", prefix.substr(0, prefix.size() - 1), "' is a ", weights->type_name(),
         ", not a dict of tensors");
  StateDict sd;
  for (const auto& [k, v] : weights->entries) {
    if (!k.is_str()) fail("'", path, "': the state dict has a key of type ", k.type_name(), ", not str");
    if (!v.is_tensor())
      fail("'", path, "': entry '", prefix, k.str, "' is a ", v.type_name(), ", not a tensor");
    sd.set(k.str, v.tensor);
  }
  if (const PyValue* args = root.get("args"))
    sd.metadata["args"] = to_json(*args, 0).dump(-1, ' ', false, json::error_handler_t::replace);
  return sd;
}

std::string config_text(const std::string& dir) {
  const std::string p = (fs::path(dir) / "config.json").string();
  return is_regular_file(p) ? read_text_file(p) : std::string();
}

// Sharded diffusers weights: "<name>.safetensors.index.json" maps each tensor to a shard file.
StateDict read_sharded(const std::string& index_path) {
  json idx;
  try {
    idx = json::parse(read_text_file(index_path));
  } catch (const json::exception& e) {
    fail("'", index_path, "' is not valid JSON: ", e.what());
  }
  if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
    fail("'", index_path, "' has no 'weight_map' object");
  std::vector<std::string> shards;
  for (auto& [k, v] : idx["weight_map"].items()) {
    if (!v.is_string()) fail("'", index_path, "': weight_map entry '", k, "' is not a file name");
    const std::string s = v.get<std::string>();
    if (s.find('/') != std::string::npos || s == "..") fail("'", index_path, "': shard name '", s, "' is not a plain file name");
    if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
  }
  StateDict sd;
  const fs::path dir = fs::path(index_path).parent_path();
  for (const auto& s : shards) {
    StateDict part = read_safetensors((dir / s).string());
    for (const auto& k : part.keys()) {
      if (sd.contains(k)) fail("tensor '", k, "' appears in more than one shard of '", index_path, "'");
      sd.set(k, part.at(k));
    }
    for (const auto& [k, v] : part.metadata) sd.metadata[k] = v;
  }
  return sd;
}

// A model folder's config.json travels with its tensors (metadata "diffusers_config"): a family
// that recognises the folder's layout needs it to rebuild what the tensors do not say.
StateDict finish(StateDict sd, const std::string& config_dir, const std::string& source) {
  const std::string cfg = config_text(config_dir);
  if (!cfg.empty()) sd.metadata["diffusers_config"] = cfg;
  sd.metadata["source_file"] = source;
  return sd;
}

StateDict load_directory(const std::string& dir) {
  for (const char* sub : {"transformer", ""}) {
    const fs::path d = std::string(sub).empty() ? fs::path(dir) : fs::path(dir) / sub;
    const fs::path st = d / "diffusion_pytorch_model.safetensors";
    if (is_regular_file(st.string())) return finish(read_safetensors(st.string()), d.string(), st.string());
    const fs::path index = d / "diffusion_pytorch_model.safetensors.index.json";
    if (is_regular_file(index.string())) return finish(read_sharded(index.string()), d.string(), index.string());
    const fs::path bin = d / "diffusion_pytorch_model.bin";
    if (is_regular_file(bin.string())) return finish(from_torch_pt(bin.string()), d.string(), bin.string());
  }
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && lower_extension(e.path().string()) == ".safetensors") found.push_back(e.path().string());
  if (ec) fail("cannot list folder '", dir, "': ", ec.message());
  if (found.size() == 1) return finish(read_safetensors(found[0]), dir, found[0]);
  if (found.empty())
    fail("folder '", dir, "' holds no checkpoint: expected transformer/diffusion_pytorch_model.safetensors, "
         "diffusion_pytorch_model.safetensors, or exactly one .safetensors file");
  std::sort(found.begin(), found.end());
  std::string list;
  for (const auto& f : found) list += "\n  " + f;
  fail("folder '", dir, "' holds ", found.size(), " .safetensors files; name the one to load:", list);
}

}  // namespace

StateDict load_checkpoint(const std::string& path) {
  if (is_directory(path)) return load_directory(path);
  if (!is_regular_file(path)) fail("checkpoint '", path, "' does not exist");
  char head[8] = {0};
  size_t got = 0;
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("cannot open checkpoint '", path, "'");
    f.read(head, sizeof head);
    got = static_cast<size_t>(f.gcount());
  }
  if (got == 0) fail("checkpoint '", path, "' is empty");
  const std::string dir = fs::path(path).parent_path().string();
  // A safetensors header length may well start with byte 0x80, so the extension decides first.
  if (lower_extension(path) == ".safetensors") return finish(read_safetensors(path), dir, path);
  const bool legacy_pickle = static_cast<uint8_t>(head[0]) == 0x80;
  if (legacy_pickle || (got >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0))
    return finish(from_torch_pt(path), dir, path);
  // Unknown extension: safetensors starts with a small little-endian length and then '{'.
  if (got == 8) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(head[i]);
    char brace = 0;
    std::ifstream f(path, std::ios::binary);
    f.seekg(8);
    if (n > 0 && n < (100ull << 20) && f.get(brace) && brace == '{') return finish(read_safetensors(path), dir, path);
  }
  fail("'", path, "' is not a recognised checkpoint: expected a .safetensors file, a torch.save .pt zip, "
       "or a diffusers model folder");
}

void save_checkpoint(const std::string& path, const StateDict& sd) {
  const std::string ext = lower_extension(path);
  if (ext == ".safetensors") return write_safetensors(path, sd);
  if (ext == ".pt" || ext == ".pth") return write_torch_pt(path, sd);
  fail("cannot save '", path, "': unknown extension '", ext, "' (use .safetensors or .pt)");
}

}  // namespace sdit

#include "io/sharded.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/file_util.h"
#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Real indexes are ~20 kB (T5-XXL) to a few MB (very large models); more is corrupt or hostile.
constexpr size_t kMaxIndexBytes = 64u << 20;

// A shard must be a plain relative path below the index's folder: HF writes bare file names.
void check_shard_name(const std::string& tensor, const std::string& shard, const std::string& what) {
  auto bad = [&](const char* why) {
    fail(what, ": tensor '", tensor, "' is mapped to shard '", shard, "', ", why);
  };
  if (shard.empty()) bad("an empty file name");
  if (shard.find('\0') != std::string::npos) bad("a name holding a NUL byte");
  if (shard.find('\\') != std::string::npos) bad("a name holding a backslash (not a plain relative path)");
  if (shard.front() == '/') bad("an absolute path outside the checkpoint folder");
  size_t begin = 0;
  while (begin <= shard.size()) {
    size_t end = shard.find('/', begin);
    if (end == std::string::npos) end = shard.size();
    const std::string part = shard.substr(begin, end - begin);
    if (part == "..") bad("a path outside the checkpoint folder");
    if (part.empty() || part == ".") bad("not a plain relative path");
    begin = end + 1;
  }
}

}  // namespace

ShardedIndex parse_sharded_index(std::string_view text, const std::string& what) {
  if (text.size() > kMaxIndexBytes)
    fail(what, ": ", text.size(), " bytes is implausibly large for a sharded-checkpoint index");
  // nlohmann keeps the last of duplicate keys silently; a tensor listed twice must be an error, so
  // every object's keys are tracked while parsing.
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  json j;
  try {
    j = json::parse(text.begin(), text.end(), [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) keys.emplace_back();
      else if (ev == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
      else if (ev == json::parse_event_t::key && !keys.empty() && parsed.is_string()) {
        const auto& k = parsed.get_ref<const std::string&>();
        if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
      }
      return true;
    });
  } catch (const json::exception& e) {
    fail(what, " is not valid JSON (", e.what(), ")");
  }
  if (!duplicate.empty()) fail(what, ": key '", duplicate, "' appears twice (a tensor listed twice?)");
  if (!j.is_object()) fail(what, " is not a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end()) fail(what, " has no \"weight_map\": not a sharded-checkpoint index");
  if (!wm->is_object()) fail(what, ": \"weight_map\" is not a JSON object");
  if (wm->empty()) fail(what, ": \"weight_map\" is empty");

  ShardedIndex idx;
  auto meta = j.find("metadata");
  if (meta != j.end() && meta->is_object()) {
    auto ts = meta->find("total_size");
    if (ts != meta->end() && ts->is_number_unsigned()) idx.total_size = ts->get<uint64_t>();
  }
  std::set<std::string> seen;
  for (auto it = wm->begin(); it != wm->end(); ++it) {  // nlohmann::json iterates keys sorted
    if (!it->is_string()) fail(what, ": tensor '", it.key(), "' is mapped to a ", it->type_name(), ", not a file name");
    const std::string shard = it->get<std::string>();
    check_shard_name(it.key(), shard, what);
    idx.weight_map[it.key()] = shard;
    seen.insert(shard);
  }
  idx.shards.assign(seen.begin(), seen.end());  // sorted, the order HF loads them in
  return idx;
}

std::string shard_path(const std::string& index_path, const std::string& shard) {
  return (fs::path(index_path).parent_path() / shard).string();
}

ShardedIndex read_sharded_index(const std::string& index_path) {
  if (!is_regular_file(index_path)) fail("sharded-checkpoint index '", index_path, "' is not a readable file");
  const std::string what = "sharded-checkpoint index '" + index_path + "'";
  {
    std::error_code ec;
    const auto size = fs::file_size(index_path, ec);
    if (!ec && size > kMaxIndexBytes)
      fail(what, ": ", size, " bytes is implausibly large for a sharded-checkpoint index");
  }
  ShardedIndex idx = parse_sharded_index(read_text_file(index_path), what);

  // Shard names were checked to be plain relative paths (parse_sharded_index). Symbolic links are
  // the folder owner's business: HF's hub cache stores every snapshot file as a link into blobs/.
  for (const auto& shard : idx.shards) {
    std::string tensor;  // one tensor that needs this shard, for the message
    for (const auto& [name, s] : idx.weight_map)
      if (s == shard) {
        tensor = name;
        break;
      }
    const fs::path p = fs::path(shard_path(index_path, shard));
    std::error_code ec;
    if (!fs::exists(p, ec))
      fail(what, ": tensor '", tensor, "' is mapped to shard '", shard, "', which does not exist");
    if (!fs::is_regular_file(p, ec))
      fail(what, ": shard '", shard, "' (tensor '", tensor, "') is not a regular file");
  }
  return idx;
}

}  // namespace sdit

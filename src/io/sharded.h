#pragma once
// Hugging Face's sharded checkpoints: an index file (model.safetensors.index.json,
// pytorch_model.bin.index.json, diffusion_pytorch_model.safetensors.index.json, ...) of the form
//   {"metadata": {"total_size": <bytes>}, "weight_map": {"<tensor name>": "<shard file>", ...}}
// next to the shard files it names. Only the index is read here; the shards are whatever format
// their extension says (see io/weight_files.h). Nothing here knows a model family's key names.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sdit {

struct ShardedIndex {
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name (relative)
  std::vector<std::string> shards;                // distinct shard names, sorted (HF's load order)
  std::optional<uint64_t> total_size;             // metadata.total_size when present
};

// Parses the index text; `what` names it in errors. Refuses (sdit::Error, one line): text that is
// not a JSON object, a missing or non-object "weight_map", a non-string shard name, a tensor name
// listed twice, an empty weight map, and shard names that could leave the index's folder (absolute,
// "..", a backslash, NUL, or not a plain relative path). Callable on any bytes (fuzz target).
ShardedIndex parse_sharded_index(std::string_view text, const std::string& what);

// Reads `index_path` and checks the shards on disk: each must exist as a regular file (through
// symbolic links: HF's hub cache links snapshot files into blobs/), else a clear error naming the
// tensor and the shard. Names leaving the folder never get this far (parse_sharded_index).
ShardedIndex read_sharded_index(const std::string& index_path);

// The folder of `index_path` joined with a shard name from its weight map.
std::string shard_path(const std::string& index_path, const std::string& shard);

}  // namespace sdit

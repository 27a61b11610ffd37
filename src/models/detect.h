#pragma once
// What every family's `detect` reads from a checkpoint's tensors (models/registry.h): block
// counts from indexed key names, required tensors with their rank, the SparseDiT layout from the
// trunk's key names (models/trunk.h), the file's "config" metadata and the attention head count.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "io/state_dict.h"
#include "models/registry.h"
#include "models/trunk.h"

namespace sdit {

// Largest index + 1 among keys "prefix<i>." (0 when absent).
int64_t count_indexed(const StateDict& sd, const std::string& prefix);
// sd[key], which must exist with `dims` dimensions; errors say "not a <family> checkpoint".
const torch::Tensor& need_tensor(const StateDict& sd, const std::string& key, int64_t dims, const std::string& family);
// The layout of a SparseDiT trunk (poolingformer_blocks, dumbbell_blocks, normal_blocks); nullopt
// for a dense trunk (blocks.i).
std::optional<SparseLayout> detect_layout(const StateDict& sd);
// The parsed "config" metadata (written by sparsedit, or by the golden generators); nullopt when
// absent; throws when it is not valid JSON.
std::optional<nlohmann::json> config_metadata(const StateDict& sd);
// Heads: the file's config metadata, else --num-heads, else the default for the width (by_width);
// a --num-heads that contradicts the file is an error rather than a silent override.
int64_t resolve_heads(const std::optional<int64_t>& from_file, int64_t hidden, const std::optional<int64_t>& by_width,
                      const LoadOptions& opt);

}  // namespace sdit

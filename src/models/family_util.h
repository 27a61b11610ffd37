#pragma once
// Reading a family's config back from a state dict, shared by every family's detect(): indexed
// key counts, required tensors, the SparseDiT layout of the authors' trunk names, the head count,
// and the config JSON a file carries in its metadata.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>

#include "io/state_dict.h"
#include "models/registry.h"
#include "models/trunk.h"

namespace sdit {

// Largest index + 1 among keys "prefix<i>." (0 when absent).
int64_t count_indexed(const StateDict& sd, const std::string& prefix);

// The tensor `key` with `dims` dimensions; otherwise "not a <family> checkpoint: ..." / a shape error.
const torch::Tensor& need_tensor(const StateDict& sd, const std::string& key, int64_t dims, const std::string& family);

// The SparseDiT layout spelled by the trunk's key names (models/trunk.h); nullopt for a dense trunk.
std::optional<SparseLayout> detect_sparse_layout(const StateDict& sd);

// The "config" metadata a checkpoint written by sparsedit carries, parsed; an empty object when
// there is none. Throws when it is not valid JSON.
nlohmann::json config_metadata(const StateDict& sd);

// A size the config metadata states (when it states `key`) must be the one the tensors have: a file
// whose metadata and weights disagree was edited or mislabelled, and neither can be trusted.
void check_metadata_size(const nlohmann::json& meta, const char* key, int64_t in_file, int64_t in_tensors);

// Heads: the file's config metadata, else --num-heads, else the family's default for the hidden size;
// a --num-heads that contradicts the file is an error rather than a silent override. 0 ("unknown")
// when nothing fixes it and opt.heads_required is false.
int64_t resolve_heads(const std::optional<int64_t>& from_file, int64_t hidden, const LoadOptions& opt,
                      const std::optional<int64_t>& family_default);

// The sizes every family's config has, overridden as `o` says; a new width takes the family's
// default head count unless o.num_heads is given (an error when there is none).
void override_trunk_sizes(const SpecOverrides& o, int64_t& hidden, int64_t& depth, int64_t& patch, int64_t& heads,
                          int64_t& in_channels, const std::function<std::optional<int64_t>(int64_t)>& default_heads);

// The square input side `o` asks for, or nullopt; fails naming `what` when height != width.
std::optional<int64_t> square_side_override(const SpecOverrides& o, int64_t current, const std::string& what);

}  // namespace sdit

#pragma once
// The weight files of a Hugging Face model folder (one file or a sharded index) and a reader that
// hands their tensors over one at a time straight from the memory map, so a model larger than half
// of RAM can be loaded and converted (e.g. fp32 shards into bf16 parameters) without ever holding
// the file's copy of it. Formats: safetensors and torch.save zips (restricted unpickler).
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/sharded.h"

namespace sdit {

struct WeightFiles {
  std::string source;               // what was given: a file or a folder
  std::vector<std::string> files;   // in load order (sorted shards)
  std::optional<ShardedIndex> index;
  std::string index_path;           // empty unless sharded
  std::string format;               // "safetensors" or "torch"
};

// The single-file names and index names HF's from_pretrained looks for, in its precedence order.
struct WeightFileNames {
  std::string safetensors = "model.safetensors";
  std::string torch = "pytorch_model.bin";
};

// `path` is a weight file (.safetensors, .bin/.pt/.pth), an index (*.index.json) or a folder. In a
// folder the precedence is HF's: <safetensors> > <safetensors>.index.json > <torch> > <torch>.index.json.
// Throws sdit::Error listing what was looked for when nothing is there.
WeightFiles find_weight_files(const std::string& path, const WeightFileNames& names = {});

// Called once per tensor name. `t` aliases the file's copy-on-write map where the file allows it
// and is meant to be read during the call only (copy or convert what you keep; never modify it in
// place). Afterwards the pages it occupied are handed back to the kernel, so reading costs about
// one tensor of resident memory, not the checkpoint.
using TensorVisitor = std::function<void(const std::string& name, const torch::Tensor& t)>;

// Visits every tensor of every file, file by file. With an index: each name it lists must be in the
// shard it names, and a name found in two files is refused (errors name the tensor and the files).
// Names the index does not list are still visited (HF loads whole shards).
void visit_weight_tensors(const WeightFiles& files, const TensorVisitor& visit);

// Gives the resident pages under a tensor's storage back to the kernel without changing its
// contents (MADV_PAGEOUT: clean file-backed pages are dropped and re-read on the next access;
// anonymous memory is left alone). A no-op where the kernel does not support it.
void release_tensor_pages(const torch::Tensor& t);

}  // namespace sdit

#pragma once
// torch.save's zip format (PyTorch >= 1.6): <prefix>/data.pkl (a pickle whose tensors reference
// storages by persistent id), <prefix>/data/<key> (raw little-endian storage bytes), <prefix>/version.
#include <memory>
#include <string>

#include "io/file_util.h"
#include "io/pickle.h"
#include "io/state_dict.h"

namespace sdit {

// The unpickled object, tensors as CPU views of the file's storages as saved (strides, offsets,
// shared storages), aliasing a copy-on-write map; the legacy (pre-1.6, non-zip) stream is
// read too. Throws sdit::Error for TorchScript archives, disallowed globals and any structural problem.
PyValue read_torch_pt(const std::string& path);
// The same from bytes in memory (MappedFile::from_memory) or an already mapped file.
PyValue read_torch_pt(const std::shared_ptr<MappedFile>& file);

// An OrderedDict of tensors that torch.load reads; atomic like write_safetensors.
void write_torch_pt(const std::string& path, const StateDict& sd);

}  // namespace sdit

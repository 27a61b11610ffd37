#pragma once
// torch.save's zip format (PyTorch >= 1.6): <prefix>/data.pkl (a pickle whose tensors reference
// storages by persistent id), <prefix>/data/<key> (raw little-endian storage bytes), <prefix>/version.
#include <string>

#include "io/pickle.h"
#include "io/state_dict.h"

namespace sdit {

// The unpickled object, tensors as contiguous CPU copies; the legacy (pre-1.6, non-zip) stream is
// read too. Throws sdit::Error for TorchScript archives, disallowed globals and any structural problem.
// alias_storages (zip format only): tensors are views of a copy-on-write memory map of the file,
// storages shared as in the file, nothing copied (see unpickle).
PyValue read_torch_pt(const std::string& path, bool alias_storages = false);

// An OrderedDict of tensors that torch.load reads; atomic like write_safetensors.
void write_torch_pt(const std::string& path, const StateDict& sd);

// True when the file begins with a pickle PROTO opcode: the pre-1.6 torch.save format.
bool is_legacy_torch_file(const std::string& path);

}  // namespace sdit

#pragma once
// The safetensors format: 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data.
#include <memory>
#include <string>

#include "io/file_util.h"
#include "io/state_dict.h"

namespace sdit {

// Validates the whole header before touching data; tensors alias a copy-on-write memory map that
// they keep alive. __metadata__ goes to sd.metadata. Tensor order is the header's order.
StateDict read_safetensors(const std::string& path);
// The same from bytes in memory (MappedFile::from_memory) or an already mapped file.
StateDict read_safetensors(const std::shared_ptr<MappedFile>& file);

// Atomic (temporary file, fsync, rename). Header in sd order; data laid out widest element first
// so every tensor is aligned to its element size without padding holes.
void write_safetensors(const std::string& path, const StateDict& sd);

}  // namespace sdit

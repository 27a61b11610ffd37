#pragma once
// Flat buckets for collectives over many small tensors (gradients, parameters): one collective per
// ~25 MB of same-dtype data instead of one per tensor. Pure functions, no communication.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace sdit::dist {

// Groups tensor indices into buckets: each bucket holds tensors of one dtype and device, in list order,
// at most `cap_bytes` in all unless a single tensor is bigger (it then gets a bucket of its own). The
// plan depends only on the list's dtypes, devices and sizes, so every rank derives the same one.
std::vector<std::vector<size_t>> plan_buckets(const std::vector<torch::Tensor>& tensors, int64_t cap_bytes);

// The bucket's tensors flattened and concatenated into one contiguous 1-D tensor.
torch::Tensor flatten_bucket(const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& bucket);

// Copies the pieces of `flat` back into the bucket's tensors (in place, any layout).
void unflatten_bucket(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors,
                      const std::vector<size_t>& bucket);

// A 64-bit digest of the list's dtypes and shapes, for checking that ranks agree on a layout.
uint64_t layout_hash(const std::vector<torch::Tensor>& tensors);

}  // namespace sdit::dist

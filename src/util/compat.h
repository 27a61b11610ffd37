#pragma once
// Every call whose spelling differs between libtorch 1.13 (Debian, CPU) and 2.x (CUDA builds)
// lives here, so the rest of the code compiles unchanged against both.
#include <torch/torch.h>

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace sdit::compat {

inline bool cuda_available() { return torch::cuda::is_available(); }

// Peak allocator memory of a CUDA device, in bytes, or -1 where libtorch cannot say (a CPU
// device, a build without CUDA). Each call is a no-op unless `device` is a CUDA device: libtorch 2.x
// throws "Invalid device argument" when asked for the statistics of a GPU that was never used.
int64_t cuda_peak_bytes(const torch::Device& device);
void cuda_reset_peak(const torch::Device& device);
void cuda_synchronize(const torch::Device& device);

// Whether float32 matmuls (cuBLAS) and convolutions (cuDNN) may round their inputs to TF32 on
// Ampere and later. PyTorch allows it for cuDNN by default, which costs ~1e-4 relative error in a
// DiT forward; sparsedit turns it off on CUDA so fp32 stays within the reference tolerances.
void set_tf32(bool allow);

// Symmetric eigendecomposition of the lower triangle of A: {eigenvalues ascending, eigenvectors
// as columns}. torch::linalg_eigh exists from 1.9 on; torch::symeig (its predecessor) is gone in 2.x.
std::tuple<torch::Tensor, torch::Tensor> eigh(const torch::Tensor& a);

}  // namespace sdit::compat

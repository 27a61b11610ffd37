#pragma once
// Every call whose spelling differs between libtorch 1.13 (Debian, CPU) and 2.x (CUDA builds)
// lives here, so the rest of the code compiles unchanged against both.
#include <torch/torch.h>

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace sdit::compat {

inline bool cuda_available() { return torch::cuda::is_available(); }

// Peak memory of the current device, in bytes, or -1 where libtorch cannot say (CPU).
int64_t cuda_peak_bytes();
void cuda_reset_peak();
void cuda_synchronize();

// Symmetric eigendecomposition of the lower triangle of A: {eigenvalues ascending, eigenvectors
// as columns}. torch::linalg_eigh exists from 1.9 on; torch::symeig (its predecessor) is gone in 2.x.
std::tuple<torch::Tensor, torch::Tensor> eigh(const torch::Tensor& a);

// NoGradGuard + InferenceMode differ in availability; NoGradGuard exists in both.
using NoGrad = torch::NoGradGuard;

}  // namespace sdit::compat

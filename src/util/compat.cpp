#include "util/compat.h"

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && defined(SPARSEDIT_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#define SDIT_CUDA_MEM 1
#endif

namespace sdit::compat {

int64_t cuda_peak_bytes() {
#ifdef SDIT_CUDA_MEM
  if (!torch::cuda::is_available()) return -1;
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
  return stats.allocated_bytes[0].peak;
#else
  return -1;
#endif
}

void cuda_reset_peak() {
#ifdef SDIT_CUDA_MEM
  if (torch::cuda::is_available())
    c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
#endif
}

void cuda_synchronize() {
#ifdef SDIT_CUDA_MEM
  if (torch::cuda::is_available()) c10::cuda::device_synchronize();
#endif
}

std::tuple<torch::Tensor, torch::Tensor> eigh(const torch::Tensor& a) {
#if defined(TORCH_VERSION_MAJOR) && (TORCH_VERSION_MAJOR > 1 || TORCH_VERSION_MINOR >= 9)
  return torch::linalg_eigh(a, "L");
#else
  return torch::symeig(a, /*eigenvectors=*/true, /*upper=*/false);
#endif
}

}  // namespace sdit::compat

#include "util/compat.h"

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && defined(SPARSEDIT_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#define SDIT_CUDA_MEM 1
#endif

namespace sdit::compat {

int64_t cuda_peak_bytes(const torch::Device& device) {
#ifdef SDIT_CUDA_MEM
  if (!device.is_cuda() || !torch::cuda::is_available()) return -1;
  try {
    const auto index = device.has_index() ? device.index() : c10::cuda::current_device();
    return c10::cuda::CUDACachingAllocator::getDeviceStats(index).allocated_bytes[0].peak;
  } catch (const std::exception&) {
    return -1;
  }
#else
  return -1;
#endif
}

void cuda_reset_peak(const torch::Device& device) {
#ifdef SDIT_CUDA_MEM
  if (!device.is_cuda() || !torch::cuda::is_available()) return;
  try {
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : c10::cuda::current_device());
  } catch (const std::exception&) {
  }
#endif
}

void cuda_synchronize(const torch::Device& device) {
#ifdef SDIT_CUDA_MEM
  if (device.is_cuda() && torch::cuda::is_available()) c10::cuda::device_synchronize();
#endif
}

void set_tf32(bool allow) {
  at::globalContext().setAllowTF32CuBLAS(allow);
  at::globalContext().setAllowTF32CuDNN(allow);
}

std::tuple<torch::Tensor, torch::Tensor> eigh(const torch::Tensor& a) {
#if defined(TORCH_VERSION_MAJOR) && (TORCH_VERSION_MAJOR > 1 || TORCH_VERSION_MINOR >= 9)
  return torch::linalg_eigh(a, "L");
#else
  return torch::symeig(a, /*eigenvectors=*/true, /*upper=*/false);
#endif
}

}  // namespace sdit::compat

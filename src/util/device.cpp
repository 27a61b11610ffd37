#include "util/device.h"

#include "util/compat.h"
#include "util/error.h"

namespace sdit {

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!compat::cuda_available())
      fail("--device ", name, ": this build of libtorch has no CUDA device available (use --device cpu)");
    try {
      torch::Device dev(name);
      compat::set_tf32(false);
      return dev;
    } catch (const std::exception&) {
      fail("invalid device '", name, "'");
    }
  }
  fail("invalid device '", name, "': use cpu, cuda or cuda:N");
}

}  // namespace sdit

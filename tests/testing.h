#pragma once
// Helpers shared by the tests: golden-file paths and the relative L2 distance every golden
// comparison is stated in. Declared globally and re-exported into sdit so both `rel_l2(...)` and
// `sdit::rel_l2(...)` work (a sdit::testing namespace would shadow gtest's ::testing inside sdit).
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <limits>
#include <string>

// ||a − ref|| / ||ref||, in double so the metric adds no float32 rounding of its own.
// Mismatched shapes give +inf; an all-zero ref gives ||a − ref||.
inline double rel_l2(const torch::Tensor& a, const torch::Tensor& ref) {
  auto a64 = a.detach().to(torch::kCPU, torch::kDouble);
  auto r64 = ref.detach().to(torch::kCPU, torch::kDouble);
  if (!a64.sizes().equals(r64.sizes())) return std::numeric_limits<double>::infinity();
  const double diff = (a64 - r64).norm().item<double>();
  const double base = r64.norm().item<double>();
  return base > 0 ? diff / base : diff;
}

// CTest passes the golden folder in the environment (CMakeLists.txt), and the sparsedit binary is
// built beside the test executables, so no path is compiled into a test and a second clone reuses
// the compiler cache.
inline std::string test_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    std::fprintf(stderr, "%s is not set: run the tests through ctest (or export it)\n", name);
    std::abort();
  }
  return v;
}
// $SPARSEDIT_BINARY if set, else the sparsedit next to this test executable.
inline std::string sparsedit_binary() {
  if (const char* v = std::getenv("SPARSEDIT_BINARY"); v && *v) return v;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  return self.substr(0, self.find_last_of('/') + 1) + "sparsedit";
}

// Absolute path of a file under the golden directory, e.g. golden("dit/forward.safetensors").
inline std::string golden(const std::string& rel) { return test_env("SPARSEDIT_GOLDEN_DIR") + "/" + rel; }

namespace sdit {
using ::golden;
using ::sparsedit_binary;
using ::rel_l2;
}  // namespace sdit

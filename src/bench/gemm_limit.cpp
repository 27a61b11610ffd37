#include "bench/gemm_limit.h"

#include <ATen/record_function.h>

#include <chrono>
#include <cstring>

#include "util/compat.h"
#include "util/error.h"

namespace sdit {
namespace {

thread_local GemmShapes* recording = nullptr;

int64_t dim(const c10::IValue& v, int64_t d) { return v.toTensor().size(d); }

// addmm(self, mat1, mat2), mm(mat1, mat2), bmm(b1, b2), baddbmm(self, b1, b2): the two operands
// are the last two tensor inputs.
std::unique_ptr<at::ObserverContext> note_shape(const at::RecordFunction& fn) {
  const char* name = fn.name();
  const bool batched = !std::strcmp(name, "aten::bmm") || !std::strcmp(name, "aten::baddbmm");
  const bool plain = !std::strcmp(name, "aten::mm") || !std::strcmp(name, "aten::addmm");
  if (!recording || !(batched || plain)) return nullptr;
  const auto in = fn.inputs();
  const size_t first = (!std::strcmp(name, "aten::addmm") || !std::strcmp(name, "aten::baddbmm")) ? 1 : 0;
  if (in.size() < first + 2 || !in[first].isTensor() || !in[first + 1].isTensor()) return nullptr;
  const auto& a = in[first];
  const auto& b = in[first + 1];
  const GemmShape s = batched ? GemmShape{dim(a, 0), dim(a, 1), dim(a, 2), dim(b, 2)}
                              : GemmShape{1, dim(a, 0), dim(a, 1), dim(b, 1)};
  recording->count[s] += 1.0;
  return nullptr;
}

double shape_flops(const GemmShape& s) {
  const auto [b, m, k, n] = s;
  return 2.0 * static_cast<double>(b) * static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Mean time of one product of shape `s`, written into a preallocated output as the model's ops do.
double time_one(const GemmShape& s, const torch::TensorOptions& o, int reps, double min_ms) {
  const auto [b, m, k, n] = s;
  const bool batched = b > 1;
  const auto x = batched ? torch::randn({b, m, k}, o) : torch::randn({m, k}, o);
  const auto w = batched ? torch::randn({b, k, n}, o) : torch::randn({k, n}, o);
  auto out = batched ? torch::empty({b, m, n}, o) : torch::empty({m, n}, o);
  auto run = [&] { batched ? torch::bmm_out(out, x, w) : torch::mm_out(out, x, w); };
  run();
  compat::cuda_synchronize(o.device());
  int done = 0;
  const double t0 = now_ms();
  double elapsed = 0;
  while (done < reps || elapsed < min_ms) {
    run();
    ++done;
    compat::cuda_synchronize(o.device());
    elapsed = now_ms() - t0;
  }
  return elapsed / done;
}

}  // namespace

void GemmShapes::add(const GemmShapes& other, double weight) {
  for (const auto& [s, c] : other.count) count[s] += c * weight;
}

double GemmShapes::flops() const {
  double f = 0;
  for (const auto& [s, c] : count) f += c * shape_flops(s);
  return f;
}

GemmShapes record_gemm_shapes(const std::function<void()>& fn) {
  if (recording) fail("bench: GEMM shapes are already being recorded on this thread");
  GemmShapes shapes;
  recording = &shapes;
  const auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(note_shape).needsInputs(true).scopes({at::RecordScope::FUNCTION}));
  try {
    fn();
  } catch (...) {
    at::removeCallback(handle);
    recording = nullptr;
    throw;
  }
  at::removeCallback(handle);
  recording = nullptr;
  return shapes;
}

double measure_gemm_rate(const GemmShapes& shapes, torch::Dtype dtype, const torch::Device& device, int reps,
                         double min_ms) {
  torch::NoGradGuard ng;
  const auto o = torch::TensorOptions().dtype(dtype).device(device);
  double flops = 0, ms = 0;
  for (const auto& [s, c] : shapes.count) {
    flops += c * shape_flops(s);
    ms += c * time_one(s, o, reps, min_ms);
  }
  return ms > 0 ? flops / (ms / 1000.0) / 1e9 : 0.0;
}

}  // namespace sdit

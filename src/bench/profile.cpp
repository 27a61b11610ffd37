#include "bench/profile.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

#include "util/error.h"

namespace sdit {
namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  std::mutex mu;
  std::map<std::string, OpTime> by_name;
  bool active = false;
};
Totals& totals() {
  static Totals t;
  return t;
}

// One open op on this thread: when it started and how much of that its callees took.
struct Frame : at::ObserverContext {
  Clock::time_point start;
  double child_ms = 0;
  Frame* parent = nullptr;
};
thread_local Frame* open_frame = nullptr;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction&) {
  auto f = std::make_unique<Frame>();
  f->parent = open_frame;
  open_frame = f.get();
  f->start = Clock::now();
  return f;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  auto* f = static_cast<Frame*>(ctx);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - f->start).count();
  open_frame = f->parent;
  if (f->parent) f->parent->child_ms += ms;
  auto& t = totals();
  std::lock_guard<std::mutex> lock(t.mu);
  auto& e = t.by_name[fn.name()];
  e.calls += 1;
  e.total_ms += ms;
  e.self_ms += ms - f->child_ms;
}

std::vector<OpTime> sorted(std::map<std::string, OpTime> m) {
  std::vector<OpTime> out;
  for (auto& [name, t] : m) {
    t.name = name;
    out.push_back(t);
  }
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.self_ms > b.self_ms; });
  return out;
}

}  // namespace

OpProfiler::OpProfiler() {
  auto& t = totals();
  {
    std::lock_guard<std::mutex> lock(t.mu);
    if (t.active) fail("bench: only one op profile can run at a time");
    t.active = true;
    t.by_name.clear();
  }
  handle_ = at::addGlobalCallback(at::RecordFunctionCallback(on_start, on_end)
                                      .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
}

OpProfiler::~OpProfiler() {
  at::removeCallback(handle_);
  std::lock_guard<std::mutex> lock(totals().mu);
  totals().active = false;
}

std::vector<OpTime> OpProfiler::ops() const {
  std::lock_guard<std::mutex> lock(totals().mu);
  return sorted(totals().by_name);
}

std::string OpProfiler::op_class(const std::string& n) {
  auto has = [&](const char* s) { return n.find(s) != std::string::npos; };
  if (has("addmm") || has("::mm") || has("bmm") || has("matmul") || has("linear") || has("convolution") ||
      has("conv2d") || has("MmBackward") || has("AddmmBackward"))
    return "GEMM (linear, attention products, conv)";
  if (has("softmax") || has("Softmax")) return "softmax";
  if (has("layer_norm") || has("LayerNorm") || has("group_norm")) return "norms";
  if (has("gelu") || has("silu") || has("Gelu") || has("Silu")) return "activations";
  if (has("copy") || has("contiguous") || has("clone") || has("cat") || has("Cat") || has("index") ||
      has("Clone"))
    return "copies (contiguous, cat, index)";
  if (has("pool") || has("upsample") || has("interpolate") || has("Pool") || has("Upsample")) return "pooling/upsampling";
  if (has("add") || has("mul") || has("sub") || has("div") || has("where") || has("fill") || has("masked") ||
      has("Add") || has("Mul"))
    return "elementwise (modulate, residual, gates)";
  if (has("empty") || has("zeros") || has("view") || has("reshape") || has("permute") || has("transpose") ||
      has("chunk") || has("split") || has("select") || has("narrow") || has("slice") || has("expand") ||
      has("unsqueeze") || has("as_strided") || has("t_") || has("::t"))
    return "views and allocation";
  return "other";
}

std::vector<OpTime> OpProfiler::classes() const {
  std::map<std::string, OpTime> by_class;
  for (const auto& o : ops()) {
    auto& c = by_class[op_class(o.name)];
    c.calls += o.calls;
    c.self_ms += o.self_ms;
    c.total_ms += o.self_ms;  // self times add up without double counting
  }
  return sorted(by_class);
}

double OpProfiler::total_self_ms() const {
  double sum = 0;
  for (const auto& o : ops()) sum += o.self_ms;
  return sum;
}

}  // namespace sdit

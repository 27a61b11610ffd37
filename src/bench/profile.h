#pragma once
// Where a forward's time goes, per operator, while a profile is active: libtorch's RecordFunction
// callbacks time every ATen op on the calling thread, and each op's self time (its own time minus
// the ops it called) is summed by name and by class (GEMM, attention softmax, norms, activations,
// elementwise, copies, pooling). `bench --profile` prints it after the rows.
#include <cstdint>
#include <string>
#include <vector>

namespace sdit {

struct OpTime {
  std::string name;  // "aten::addmm", or a class name in classes()
  int64_t calls = 0;
  double self_ms = 0, total_ms = 0;
};

class OpProfiler {
 public:
  OpProfiler();   // starts timing (one profiler at a time)
  ~OpProfiler();  // stops
  OpProfiler(const OpProfiler&) = delete;
  OpProfiler& operator=(const OpProfiler&) = delete;

  std::vector<OpTime> ops() const;      // by op name, most self time first
  std::vector<OpTime> classes() const;  // by op class, most self time first
  double total_self_ms() const;
  static std::string op_class(const std::string& op_name);

 private:
  uint64_t handle_ = 0;
};

}  // namespace sdit

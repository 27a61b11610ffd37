#pragma once
// What every subcommand shares: device/thread setup, a stage logger with timings, a progress bar.
#include <torch/torch.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "util/device.h"  // parse_device, shared with the trainer

namespace sdit::cli {

// threads <= 0 keeps libtorch's default. Sets intra-op threads (OpenMP) for this process.
void set_threads(int threads);
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what);

class Log {
 public:
  explicit Log(bool quiet) : quiet_(quiet), start_(Clock::now()), stage_(start_) {}
  bool quiet() const { return quiet_; }
  // Prints "[  1.23s] message (stage 0.45s)" and starts the next stage's clock.
  void stage(const std::string& message);
  void info(const std::string& message) const;

 private:
  using Clock = std::chrono::steady_clock;
  bool quiet_;
  Clock::time_point start_, stage_;
};

// One line on stderr, redrawn in place: "sampling |#####     | 12/50 0.31 s/it".
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool quiet);
  void set_total(int64_t total) { total_ = total; }
  void update(int64_t done);
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool quiet_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sdit::cli

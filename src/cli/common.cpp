#include "cli/common.h"

#include <cstdio>
#include <iostream>
#include <sstream>

#include "util/error.h"

namespace sdit::cli {

void set_threads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t pos = 0;
    try {
      out.push_back(std::stoll(item, &pos));
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos == 0 || pos != item.size()) fail("invalid ", what, " '", item, "' in '", text, "': expected integers a,b,c");
  }
  if (out.empty()) fail("empty ", what, " list");
  return out;
}

void Log::stage(const std::string& message) {
  auto now = Clock::now();
  if (!quiet_) {
    const double total = std::chrono::duration<double>(now - start_).count();
    const double st = std::chrono::duration<double>(now - stage_).count();
    std::fprintf(stderr, "[%7.2fs] %s (%.2fs)\n", total, message.c_str(), st);
  }
  stage_ = now;
}

void Log::info(const std::string& message) const {
  if (!quiet_) std::fprintf(stderr, "%s\n", message.c_str());
}


ProgressBar::ProgressBar(std::string label, int64_t total, bool quiet)
    : label_(std::move(label)), total_(total), quiet_(quiet), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t done) {
  if (quiet_ || total_ <= 0) return;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int width = 30;
  const int filled = static_cast<int>(width * done / total_);
  std::string bar(filled, '#');
  bar.resize(width, ' ');
  const double per = done > 0 ? secs / done : 0.0;
  if (per >= 1.0 || per == 0.0)
    std::fprintf(stderr, "\r%s |%s| %lld/%lld %.2f s/it ", label_.c_str(), bar.c_str(), (long long)done,
                 (long long)total_, per);
  else
    std::fprintf(stderr, "\r%s |%s| %lld/%lld %.2f it/s ", label_.c_str(), bar.c_str(), (long long)done,
                 (long long)total_, 1.0 / per);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!quiet_ && total_ > 0) std::fprintf(stderr, "\n");
}

}  // namespace sdit::cli

#pragma once
// One exception type for every user-facing failure: the CLI prints what() and exits non-zero.
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdit {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] inline void fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str());
}

template <typename T>
std::string shape_str(const std::vector<T>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

}  // namespace sdit

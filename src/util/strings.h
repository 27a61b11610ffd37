#pragma once
// String helpers every layer uses (parsing flag values, printing tables), written once.
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace sdit {

// Whitespace (space, tab, CR, LF) removed at both ends.
inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Fields between separators, each trimmed; a trailing separator gives a last empty field (so
// "1,2," can be reported as malformed rather than read as "1,2").
inline std::vector<std::string> split(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep)) out.push_back(trim(cur));
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

template <typename T>
std::string join(const std::vector<T>& v, const std::string& sep = ",") {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? sep : "") << v[i];
  return os.str();
}

// printf-style formatting of one number, e.g. fmt("%.2f", x).
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace sdit

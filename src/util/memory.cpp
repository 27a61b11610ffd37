#include "util/memory.h"

#include <fstream>
#include <string>

namespace sdit {
namespace {

// "Name:   1234 kB" lines of a /proc file, in bytes; -1 when the field is absent.
int64_t proc_kb_field(const char* file, const std::string& name) {
  std::ifstream f(file);
  std::string line;
  while (std::getline(f, line)) {
    if (line.compare(0, name.size(), name) != 0 || line.size() <= name.size() || line[name.size()] != ':') continue;
    try {
      return std::stoll(line.substr(name.size() + 1)) * 1024;
    } catch (const std::exception&) {
      return -1;
    }
  }
  return -1;
}

}  // namespace

int64_t process_rss_bytes() { return proc_kb_field("/proc/self/status", "VmRSS"); }
int64_t process_peak_rss_bytes() { return proc_kb_field("/proc/self/status", "VmHWM"); }
int64_t system_available_bytes() { return proc_kb_field("/proc/meminfo", "MemAvailable"); }

bool reset_process_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

}  // namespace sdit

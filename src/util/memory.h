#pragma once
// The process's memory as Linux reports it (/proc), for peak-memory reports of loaders and benches.
#include <cstdint>

namespace sdit {

// Resident set size now (VmRSS) and its peak (VmHWM), in bytes; -1 where /proc cannot say.
int64_t process_rss_bytes();
int64_t process_peak_rss_bytes();
// Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs, Linux >= 4.0); false if refused.
bool reset_process_peak_rss();
// MemAvailable of /proc/meminfo in bytes (what can be allocated without swapping); -1 if unknown.
int64_t system_available_bytes();

}  // namespace sdit

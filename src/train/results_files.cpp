#include "train/results_files.h"

#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/file_util.h"

namespace sdit {

namespace fs = std::filesystem;
using json = nlohmann::json;

void truncate_log(const std::string& path, int64_t step) {
  if (!is_regular_file(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  bool dropped = false;
  while (std::getline(in, line)) {
    int64_t s = -1;
    try {
      s = json::parse(line).at("step").get<int64_t>();
    } catch (...) {
      dropped = true;  // a torn last line
      continue;
    }
    if (s > step) dropped = true;
    else kept += line + "\n";
  }
  if (!dropped) return;
  AtomicFile f(path);
  f.write(kept.data(), kept.size());
  f.commit();
}

void remove_stale_temporaries(const std::string& results_dir) {
  std::error_code ec;
  const fs::path dir = fs::path(results_dir) / "checkpoints";
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const auto pos = name.find(".safetensors.tmp.");
    if (pos == std::string::npos || !e.is_regular_file()) continue;
    pid_t pid = 0;
    try {
      pid = static_cast<pid_t>(std::stol(name.substr(pos + 17)));
    } catch (const std::exception&) {
      continue;
    }
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(e.path());
  }
  for (const auto& p : stale) fs::remove(p, ec);
}

}  // namespace sdit

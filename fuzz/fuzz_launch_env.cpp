// libFuzzer target: the launch-environment parsers (torchrun/Slurm variables, Slurm host lists and
// tasks-per-node strings) must answer every input with a Launch or one sdit::Error, never a crash.
// Input: NUL-separated "NAME=VALUE" entries; the first entry is also fed to the Slurm string parsers.
// Seeds: "RANK=1\0WORLD_SIZE=2\0MASTER_ADDR=h\0MASTER_PORT=1", "SLURM_PROCID=0\0SLURM_STEP_ID=0\0
// SLURM_NTASKS=2\0SLURM_STEP_NODELIST=gpu[07-10,12]\0SLURM_TASKS_PER_NODE=2(x3),1".
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "common.h"
#include "dist/launch_env.h"
#include "util/error.h"

void sdit::fuzz::write_seeds(const std::string& dir) {
  using namespace std::string_literals;
  write_seed(dir, "torchrun", "RANK=1\0WORLD_SIZE=2\0LOCAL_RANK=1\0MASTER_ADDR=h\0MASTER_PORT=1"s);
  write_seed(dir, "slurm",
             "SLURM_PROCID=0\0SLURM_STEP_ID=0\0SLURM_NTASKS=2\0SLURM_STEP_NODELIST=gpu[07-10,12]\0"
             "SLURM_TASKS_PER_NODE=2(x3),1"s);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> vars;
  std::string first;
  for (size_t pos = 0; pos <= in.size();) {
    size_t end = in.find('\0', pos);
    if (end == std::string::npos) end = in.size();
    const std::string kv = in.substr(pos, end - pos);
    if (first.empty()) first = kv;
    const size_t eq = kv.find('=');
    if (eq != std::string::npos && eq > 0 && eq + 1 < kv.size()) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
    pos = end + 1;
  }
  const sdit::dist::EnvLookup env = [&vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  try {
    sdit::dist::launch_from_env(env);
  } catch (const sdit::Error&) {
  }
  try {
    sdit::dist::slurm_first_host(first);
  } catch (const sdit::Error&) {
  }
  try {
    sdit::dist::slurm_tasks_on_node(first, static_cast<int>(size % 7));
  } catch (const sdit::Error&) {
  }
  return 0;
}

#pragma once
// Who am I in which world? Read from the launcher's environment, before any connection is made.
//
// Precedence: torchrun-style variables (RANK, WORLD_SIZE, ...; also set by `--nproc N`) > Slurm's
// variables inside an `srun` step > one process. The parsing is a pure function of an environment
// lookup, so it is tested without touching the process environment.
#include <functional>
#include <optional>
#include <string>

namespace sdit::dist {

struct Launch {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // torchrun's agent (static rendezvous) already serves a TCPStore at master_addr:master_port; every rank
  // is then a client under the prefix /worker/attempt_<restart_count>, as Python's env:// does.
  bool agent_store = false;
  int restart_count = 0;
  std::string source = "single";  // "single" | "torchrun" | "nproc" (the local launcher) | "slurm"
  bool distributed() const { return world_size > 1; }
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment as an EnvLookup (empty values count as unset).
EnvLookup process_env();

// Parses the launch environment; throws sdit::Error with one clear line for an inconsistent one
// (RANK without WORLD_SIZE, a rank outside [0, world), a non-numeric value, an unusable Slurm node list).
Launch launch_from_env(const EnvLookup& env = process_env());

// The first host of a Slurm host list, without calling scontrol: "gpu[07-10,12],cpu3" -> "gpu07",
// "a[1-2]-b[3-4]" -> "a1-b3" (the first value of each bracket, which is the first host Slurm expands to).
// Throws sdit::Error for a malformed list.
std::string slurm_first_host(const std::string& nodelist);

// Tasks on node `node_id` from a Slurm tasks-per-node string: "2(x3),1" with node 3 -> 1.
int slurm_tasks_on_node(const std::string& tasks_per_node, int node_id);

}  // namespace sdit::dist

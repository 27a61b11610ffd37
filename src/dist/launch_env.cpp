#include "dist/launch_env.h"

#include <cstdlib>
#include <vector>

#include "util/error.h"

namespace sdit::dist {
namespace {

int parse_int(const EnvLookup& env, const std::string& name, std::optional<int> fallback = std::nullopt) {
  const auto v = env(name);
  if (!v) {
    if (fallback) return *fallback;
    fail("distributed launch: ", name, " is not set");
  }
  size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(*v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v->size() || x < 0 || x > (1LL << 30)) fail("distributed launch: ", name, "='", *v, "' is not a count");
  return static_cast<int>(x);
}

void check_ranks(const Launch& l, const std::string& names) {
  if (l.world_size < 1) fail("distributed launch: world size ", l.world_size, " (", names, ") must be >= 1");
  if (l.rank >= l.world_size)
    fail("distributed launch: rank ", l.rank, " is outside a world of ", l.world_size, " (", names, ")");
  if (l.local_world_size < 1 || l.local_rank >= l.local_world_size)
    fail("distributed launch: local rank ", l.local_rank, " is outside the ", l.local_world_size,
         " ranks of this node (", names, ")");
}

// torchrun, `--nproc N`, or variables set by hand (one node unless LOCAL_* say otherwise).
Launch from_torchrun_vars(const EnvLookup& env) {
  Launch l;
  l.rank = parse_int(env, "RANK");
  if (!env("WORLD_SIZE")) fail("distributed launch: RANK is set but WORLD_SIZE is not");
  l.world_size = parse_int(env, "WORLD_SIZE");
  l.local_rank = parse_int(env, "LOCAL_RANK", l.rank);
  l.local_world_size = parse_int(env, "LOCAL_WORLD_SIZE", l.world_size);
  const bool agent = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  l.source = env("SPARSEDIT_LOCAL_LAUNCH") ? "nproc" : (agent || env("TORCHELASTIC_RUN_ID")) ? "torchrun" : "env";
  check_ranks(l, "RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE");
  if (l.world_size > 1) {
    // As Python's env:// rendezvous: both are required, there is no silent default.
    if (!env("MASTER_ADDR")) fail("distributed launch: WORLD_SIZE=", l.world_size, " but MASTER_ADDR is not set");
    if (!env("MASTER_PORT")) fail("distributed launch: WORLD_SIZE=", l.world_size, " but MASTER_PORT is not set");
    l.master_addr = *env("MASTER_ADDR");
    l.master_port = parse_int(env, "MASTER_PORT");
    l.agent_store = agent;
    l.restart_count = parse_int(env, "TORCHELASTIC_RESTART_COUNT", 0);
  }
  return l;
}

// One task of an `srun` step. sbatch's batch script also has SLURM_PROCID and SLURM_NTASKS, but no
// step id: a plain `sparsedit` line in a batch script is one process, not rank 0 of a world that never comes.
Launch from_slurm_vars(const EnvLookup& env) {
  Launch l;
  l.source = "slurm";
  l.rank = parse_int(env, "SLURM_PROCID");
  l.world_size = env("SLURM_STEP_NUM_TASKS") ? parse_int(env, "SLURM_STEP_NUM_TASKS") : parse_int(env, "SLURM_NTASKS");
  l.local_rank = parse_int(env, "SLURM_LOCALID", 0);
  const int node = parse_int(env, "SLURM_NODEID", 0);
  const auto per_node = env("SLURM_STEP_TASKS_PER_NODE") ? env("SLURM_STEP_TASKS_PER_NODE") : env("SLURM_TASKS_PER_NODE");
  l.local_world_size = per_node ? slurm_tasks_on_node(*per_node, node) : parse_int(env, "SLURM_NTASKS_PER_NODE", 1);
  check_ranks(l, "SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID/SLURM_TASKS_PER_NODE");
  if (l.world_size == 1) return l;

  if (env("MASTER_ADDR")) {
    l.master_addr = *env("MASTER_ADDR");
  } else {
    const auto list = env("SLURM_STEP_NODELIST") ? env("SLURM_STEP_NODELIST")
                      : env("SLURM_JOB_NODELIST") ? env("SLURM_JOB_NODELIST") : env("SLURM_NODELIST");
    if (!list) fail("distributed launch (Slurm): no SLURM_STEP_NODELIST/SLURM_JOB_NODELIST; export MASTER_ADDR");
    l.master_addr = slurm_first_host(*list);
    // Rank 0 serves the store on its own node, so that node must be the one the others will call.
    // Slurm's default block distribution puts task 0 on the step's first node; other layouts need MASTER_ADDR.
    const auto me = env("SLURMD_NODENAME");
    if (l.rank == 0 && me && *me != l.master_addr)
      fail("distributed launch (Slurm): rank 0 runs on ", *me, " but the node list starts with ", l.master_addr,
           "; export MASTER_ADDR=", *me, " (and a MASTER_PORT) for every task");
  }
  // The port: MASTER_PORT, else derived from the job id as Lightning's SLURMEnvironment does
  // (15000 + the job id's last four digits), so two jobs sharing a node rarely collide.
  if (env("MASTER_PORT")) {
    l.master_port = parse_int(env, "MASTER_PORT");
  } else {
    l.master_port = 15000 + (env("SLURM_JOB_ID") ? parse_int(env, "SLURM_JOB_ID") % 10000 : 14500);
  }
  return l;
}

}  // namespace

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v || !*v) return std::nullopt;
    return std::string(v);
  };
}

Launch launch_from_env(const EnvLookup& env) {
  Launch l;
  if (env("RANK") || env("WORLD_SIZE")) {
    l = from_torchrun_vars(env);
  } else if (env("SLURM_PROCID") && (env("SLURM_STEP_ID") || env("SLURM_STEPID"))) {
    l = from_slurm_vars(env);
  }
  if (l.master_port < 1 || l.master_port > 65535) fail("distributed launch: port ", l.master_port, " is out of range");
  return l;
}

std::string slurm_first_host(const std::string& nodelist) {
  // The first top-level entry (commas inside brackets do not separate hosts).
  std::string first;
  int depth = 0;
  for (char c : nodelist) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (depth < 0 || depth > 1) fail("Slurm node list '", nodelist, "' is malformed");
    if (c == ',' && depth == 0) break;
    first += c;
  }
  if (depth != 0 || first.empty()) fail("Slurm node list '", nodelist, "' is malformed");
  // Replace every bracket group by its first value: "07-10,12" -> "07" (zero padding kept as written).
  std::string host;
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i] != '[') {
      host += first[i];
      continue;
    }
    const size_t close = first.find(']', i);
    const std::string group = first.substr(i + 1, close - i - 1);
    const std::string value = group.substr(0, group.find_first_of("-,"));
    if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
      fail("Slurm node list '", nodelist, "': cannot read the range [", group, "]");
    host += value;
    i = close;
  }
  return host;
}

int slurm_tasks_on_node(const std::string& tasks_per_node, int node_id) {
  // Comma-separated "count" or "count(xrepeat)" entries, one per run of nodes in node-list order.
  auto number = [&](const std::string& text) {
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos)
      fail("Slurm tasks per node '", tasks_per_node, "' is malformed");
    return std::stoll(text);
  };
  long long node = 0;
  size_t pos = 0;
  while (pos < tasks_per_node.size()) {
    size_t end = tasks_per_node.find(',', pos);
    if (end == std::string::npos) end = tasks_per_node.size();
    const std::string item = tasks_per_node.substr(pos, end - pos);
    const size_t paren = item.find("(x");
    const long long count = number(item.substr(0, paren));
    long long repeat = 1;
    if (paren != std::string::npos) {
      if (item.back() != ')') fail("Slurm tasks per node '", tasks_per_node, "' is malformed");
      repeat = number(item.substr(paren + 2, item.size() - paren - 3));
    }
    if (count < 1 || repeat < 1) fail("Slurm tasks per node '", tasks_per_node, "' is malformed");
    if (node_id < node + repeat) return static_cast<int>(count);
    node += repeat;
    pos = end + 1;
  }
  fail("Slurm tasks per node '", tasks_per_node, "' lists ", node, " nodes; this is node ", node_id);
}

}  // namespace sdit::dist

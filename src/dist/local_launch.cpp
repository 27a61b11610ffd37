#include "dist/local_launch.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <thread>

#include "dist/c10d_compat.h"
#include "dist/launch_env.h"
#include "dist/world.h"
#include "util/error.h"

extern char** environ;

namespace sdit::dist {
namespace {

#ifdef SPARSEDIT_HAVE_C10D
// The variables a launcher owns; the parent's values for them never reach a child.
const std::set<std::string> kLaunchVars{
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
    "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_RUN_ID", "SPARSEDIT_LOCAL_LAUNCH"};

std::vector<std::string> child_env(int rank, int nproc, int port) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv(*e);
    if (!kLaunchVars.count(kv.substr(0, kv.find('=')))) env.push_back(kv);
  }
  const std::string r = std::to_string(rank), n = std::to_string(nproc);
  for (std::string kv : {"RANK=" + r, "LOCAL_RANK=" + r, "WORLD_SIZE=" + n, "LOCAL_WORLD_SIZE=" + n,
                         std::string("GROUP_RANK=0"), std::string("MASTER_ADDR=127.0.0.1"),
                         "MASTER_PORT=" + std::to_string(port), std::string("TORCHELASTIC_USE_AGENT_STORE=True"),
                         std::string("TORCHELASTIC_RESTART_COUNT=0"), std::string("SPARSEDIT_LOCAL_LAUNCH=1")})
    env.push_back(kv);
  // As torchrun: N ranks on one machine share its cores, unless the user chose a thread count.
  if (!std::getenv("OMP_NUM_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    env.push_back("OMP_NUM_THREADS=" + std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc))));
  }
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

pid_t start_rank(const std::string& exe, std::vector<std::string> args, std::vector<std::string> env) {
  // Everything is prepared before fork: the parent has threads (the store server), so until execve the
  // child may only make async-signal-safe calls.
  auto argv = c_strings(args);
  auto envp = c_strings(env);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) fail("--nproc: fork failed: ", std::strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphan ranks if the launcher dies
    if (getppid() != parent) _exit(127);
    execve(exe.c_str(), argv.data(), envp.data());
    static const char msg[] = "sparsedit --nproc: cannot execute the program\n";
    [[maybe_unused]] auto ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(127);
  }
  return pid;
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

// SIGTERM to the ranks still running, `grace_s` seconds to exit, then SIGKILL; reaps them all.
void stop_all(std::map<pid_t, int>& running, double grace_s) {
  for (const auto& kv : running) kill(kv.first, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  while (!running.empty() && std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    const pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid > 0) running.erase(pid);
    else if (pid < 0 && errno == ECHILD) running.clear();
    else std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (const auto& kv : running) kill(kv.first, SIGKILL);
  while (!running.empty()) {
    int st = 0;
    const pid_t pid = waitpid(-1, &st, 0);
    if (pid > 0) running.erase(pid);
    else if (errno != EINTR) break;
  }
}

// Waits for the ranks; the first failure stops the rest. Returns 0 or the first failure's exit code.
int supervise(std::map<pid_t, int> running, const LocalLaunchOptions& o) {
  int result = 0;
  while (!running.empty()) {
    int st = 0;
    const pid_t pid = waitpid(-1, &st, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      fail("--nproc: waitpid failed: ", std::strerror(errno));
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const int rank = it->second;
    running.erase(it);
    if (exit_code(st) == 0) continue;
    result = exit_code(st);
    std::cerr << "sparsedit --nproc: rank " << rank
              << (WIFSIGNALED(st) ? " was killed by signal " + std::to_string(WTERMSIG(st))
                                  : " exited with status " + std::to_string(WEXITSTATUS(st)))
              << (running.empty() ? "" : "; stopping the other ranks") << std::endl;
    stop_all(running, o.grace_s);
  }
  return result;
}
#endif  // SPARSEDIT_HAVE_C10D

}  // namespace

int run_local_ranks(int nproc, const std::string& exe, const std::vector<std::string>& args,
                    const LocalLaunchOptions& options) {
  if (nproc < 1) fail("--nproc must be at least 1, got ", nproc);
  if (args.empty()) fail("--nproc: no program to run");
  const Launch outer = launch_from_env();
  if (outer.distributed())
    fail("--nproc ", nproc, " starts its own ranks and cannot run inside another launch (", outer.source,
         " already made this rank ", outer.rank, " of ", outer.world_size, ")");
#ifdef SPARSEDIT_HAVE_C10D
  if (!build_support().gloo && !build_support().nccl)
    fail("--nproc: this sparsedit was built with c10d but without a backend (no gloo headers, no NCCL)");
  // The rendezvous store lives in this process for the whole run, like torchrun's agent store; port 0
  // lets the kernel pick a free port, so concurrent launches never race for one.
  c10d::TCPStoreOptions so;
  so.port = 0;
  so.isServer = true;
  so.waitWorkers = false;
  so.timeout = std::chrono::seconds(60);
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  } catch (const std::exception& e) {
    fail("--nproc: cannot start the rendezvous store on 127.0.0.1: ", e.what());
  }
  const int port = store->getPort();
  std::map<pid_t, int> running;
  for (int r = 0; r < nproc; ++r) running[start_rank(exe, args, child_env(r, nproc, port))] = r;
  return supervise(std::move(running), options);
#else
  fail("--nproc needs c10d (torch.distributed), which this sparsedit was built without; rebuild against a "
       "libtorch with c10d and install libgloo-dev (docs/distributed.md)");
#endif
}

std::vector<std::string> own_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t pos = 0;
  while (pos < all.size()) {
    const size_t end = all.find('\0', pos);
    args.push_back(all.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (args.empty()) fail("cannot read this process's command line from /proc/self/cmdline");
  return args;
}

std::vector<std::string> without_flag(const std::vector<std::string>& args, const std::string& flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i > 0 && args[i] == flag) {
      ++i;  // and its value
      continue;
    }
    if (i > 0 && args[i].rfind(flag + "=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

int relaunch_self(int nproc, const std::string& flag) {
  return run_local_ranks(nproc, "/proc/self/exe", without_flag(own_command_line(), flag));
}

}  // namespace sdit::dist

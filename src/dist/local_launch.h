#pragma once
// `--nproc N`: a minimal torchrun for one machine. The parent serves the rendezvous store (as torchrun's
// agent does) on 127.0.0.1 with a port the kernel picks, then starts the same program N times with
// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT and
// TORCHELASTIC_USE_AGENT_STORE=True in their environment, so each child joins exactly as it would under
// torchrun. The parent waits; when a rank fails it stops the others (SIGTERM, then SIGKILL after a
// grace period) and returns that rank's exit status. Children die with the parent (PR_SET_PDEATHSIG).
#include <string>
#include <vector>

namespace sdit::dist {

struct LocalLaunchOptions {
  double grace_s = 5;  // after the first failure: how long the other ranks get to exit after SIGTERM
};

// Runs `args` (args[0] is the program; `exe` the file to execute) as ranks 0..nproc-1. Returns 0 when all
// ranks exit 0, else the first failing rank's status (128 + signal for a signal). Throws sdit::Error when
// it cannot start (no c10d in this build, already inside a distributed launch, nproc < 1).
int run_local_ranks(int nproc, const std::string& exe, const std::vector<std::string>& args,
                    const LocalLaunchOptions& options = {});

// This process's command line (/proc/self/cmdline).
std::vector<std::string> own_command_line();

// args without `flag VALUE` / `flag=VALUE` (the children must not launch again).
std::vector<std::string> without_flag(const std::vector<std::string>& args, const std::string& flag);

// The subcommand helper: re-runs this very command line without `flag` as `nproc` local ranks.
int relaunch_self(int nproc, const std::string& flag = "--nproc");

}  // namespace sdit::dist

#pragma once
// `sparsedit dist-check`: checks every collective of World against values each rank can compute on its
// own, and optionally times the gradient all-reduce. The same binary, launched by torchrun, srun or
// --nproc, tells whether a machine or cluster is ready before a long run (like nccl-tests).
#include <cstdint>
#include <iosfwd>

#include "dist/world.h"

namespace sdit::dist {

struct SelfTestOptions {
  double mb = 0;          // all-reduce timing size in MB of fp32 (0: no timing)
  int iters = 5;          // timed repetitions (the median of the slowest rank is reported)
  int fail_rank = -1;     // this rank exits with status 3 before the first collective (a crash)
  int stall_rank = -1;    // this rank sleeps twice the timeout before the first collective (a hang)
};

// Rank 0 prints one line per check to `out`. Returns true when every check passed on every rank.
bool run_selftest(const World& world, const SelfTestOptions& options, std::ostream& out);

}  // namespace sdit::dist

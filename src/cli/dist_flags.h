#pragma once
// The distributed-launch flags train, sample, eval and bench share (docs/distributed.md §8.1):
// --nproc N (fork N local ranks), --dist auto|off, --dist-backend, --dist-timeout, and the
// --local-rank torch.distributed.launch appends. torchrun's and Slurm's variables need no flag.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <string>

#include "dist/world.h"

namespace sdit::cli {

struct DistFlags {
  int nproc = 0;
  std::string mode = "auto", backend = "auto";
  double timeout_s = dist::kDefaultTimeoutSeconds;
  int ignored_local_rank = -1;

  void add(CLI::App* c);
  // With --nproc: runs this very command line as N local ranks and throws CLI::RuntimeError with
  // their exit status (the parent does nothing else). Call first, before any work.
  void relaunch_if_asked() const;
  // Joins the world the launch describes (a World of size 1 without one). A CUDA `device` becomes
  // cuda:<local rank> (one GPU per local rank).
  dist::World connect(torch::Device& device) const;
};

}  // namespace sdit::cli

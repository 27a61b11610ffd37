// `sparsedit dist-check` (hidden from --help; a diagnostic): joins the distributed world the launcher
// describes (torchrun, srun, or --nproc N here), checks every collective against values each rank
// computes alone, and with --mb times the gradient all-reduce. Exit status 0 only if every check
// passed on every rank. --fail-rank / --stall-rank make a rank crash or hang, to see how the others end.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "dist/local_launch.h"
#include "dist/selftest.h"
#include "dist/world.h"
#include "util/device.h"

namespace sdit::cli {
namespace {

struct DistCheckArgs {
  int nproc = 0;
  double timeout = 60;
  std::string backend = "auto", device = "cpu";
  dist::SelfTestOptions test;
};

void run(const DistCheckArgs& a) {
  if (a.nproc > 0) throw CLI::RuntimeError(dist::relaunch_self(a.nproc));
  dist::WorldOptions wo;
  wo.backend = a.backend;
  wo.timeout_s = a.timeout;
  wo.device = parse_device(a.device);
  const auto world = dist::World::from_env(wo);
  if (!dist::run_selftest(world, a.test, std::cout)) throw CLI::RuntimeError(1);
}

}  // namespace

void register_dist_check(CLI::App& app) {
  auto a = std::make_shared<DistCheckArgs>();
  auto* c = app.add_subcommand("dist-check", "Check (and time) the distributed collectives across the launched ranks");
  c->group("");  // hidden: documented in docs/distributed.md
  c->add_option("--nproc", a->nproc, "Fork N local ranks on 127.0.0.1 (instead of torchrun/srun)");
  c->add_option("--timeout", a->timeout, "Rendezvous and collective timeout, seconds")->capture_default_str();
  c->add_option("--backend", a->backend, "auto | gloo | nccl")->capture_default_str();
  c->add_option("--device", a->device, "cpu | cuda | cuda:N (NCCL needs a CUDA device)")->capture_default_str();
  c->add_option("--mb", a->test.mb, "Time an all-reduce of this many MB of fp32 (0: no timing)")->capture_default_str();
  c->add_option("--iters", a->test.iters, "Timed repetitions")->capture_default_str();
  c->add_option("--fail-rank", a->test.fail_rank, "This rank exits before the first collective (a crash)");
  c->add_option("--stall-rank", a->test.stall_rank, "This rank sleeps 2x the timeout before the first collective");
  c->callback([a] { run(*a); });
}

}  // namespace sdit::cli

#include "cli/dist_flags.h"

#include "dist/local_launch.h"
#include "util/error.h"

namespace sdit::cli {

void DistFlags::add(CLI::App* c) {
  c->add_option("--nproc", nproc, "fork N local ranks on 127.0.0.1 (no torchrun needed)");
  c->add_option("--dist", mode, "auto (join the world torchrun/srun/--nproc describe) | off")->capture_default_str();
  c->add_option("--dist-backend", backend, "auto (nccl for cuda, else gloo) | gloo | nccl")->capture_default_str();
  c->add_option("--dist-timeout", timeout_s, "seconds before a stalled rank fails the others")->capture_default_str();
  // torch.distributed.launch appends it; the rank comes from the environment.
  c->add_option("--local_rank,--local-rank", ignored_local_rank)->group("");
}

void DistFlags::relaunch_if_asked() const {
  if (nproc > 0) throw CLI::RuntimeError(dist::relaunch_self(nproc));
}

dist::World DistFlags::connect(torch::Device& device) const {
  if (mode != "auto" && mode != "off") fail("--dist must be auto or off, got '", mode, "'");
  if (!(timeout_s > 0)) fail("--dist-timeout must be positive, got ", timeout_s);
  const dist::Launch launch = mode == "off" ? dist::Launch{} : dist::launch_from_env();
  device = dist::device_for_rank(device, launch);
  dist::WorldOptions wo;
  wo.backend = backend;
  wo.timeout_s = timeout_s;
  wo.device = device;
  return dist::World::connect(launch, wo);
}

}  // namespace sdit::cli

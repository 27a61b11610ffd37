#pragma once
// The distributed world of one run: this process's rank among its peers, and the collectives the
// trainer, the sampler and eval need, on c10d (TCPStore rendezvous; ProcessGroupGloo for CPU tensors,
// ProcessGroupNCCL for CUDA tensors). No c10d type appears here: the rest of the code sees plain types
// and one code path, because a World of size 1 (one process, or a build without c10d) turns every
// collective into a no-op that returns its input.
//
// Every collective must be called by every rank, in the same order, with matching tensor lists
// (dtypes and shapes; all_gather_rows alone allows a different row count per rank). A peer that
// exits makes the others' next collective fail within milliseconds; a peer that stays alive but
// stops calling collectives makes them fail after `timeout_s`. Either way the call throws sdit::Error
// naming the operation and this rank, and the World refuses further collectives, so a caller that
// lets the error propagate exits non-zero instead of hanging. Decisions to stop early (a NaN loss, a
// failed checkpoint write) go through agree_stop so that all ranks stop together.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/launch_env.h"

namespace sdit::dist {

constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;  // torch DDP's bucket_cap_mb = 25 (MiB)
constexpr double kDefaultTimeoutSeconds = 1800;              // PyTorch's default process-group timeout

// What this build can do (configure-time probes of the libtorch it was built against).
struct BuildSupport {
  bool c10d = false, gloo = false, nccl = false;
};
BuildSupport build_support();

struct WorldOptions {
  std::string backend = "auto";             // "auto" (nccl for a CUDA device, else gloo) | "gloo" | "nccl"
  double timeout_s = kDefaultTimeoutSeconds;  // the rendezvous and each collective
  torch::Device device = torch::kCPU;       // where the caller's tensors live (cuda:LOCAL_RANK for NCCL)
};

enum class Reduce { Sum, Max, Min };

// The outcome of agree_stop, identical on every rank.
struct StopVerdict {
  bool stop = false;
  int rank = -1;        // the lowest rank that asked to stop
  int count = 0;        // how many ranks asked
  std::string reason;   // that rank's reason
  std::string message() const;  // "rank 1 (and 2 more ranks): loss is NaN"
};

class World {
 public:
  World();  // one process: size 1, no communication

  // Joins the world `launch` describes (a launch of size 1 gives the trivial World). Throws sdit::Error
  // when the build lacks the backend, or the rendezvous fails or times out.
  static World connect(const Launch& launch, const WorldOptions& options = {});
  static World from_env(const WorldOptions& options = {}) { return connect(launch_from_env(), options); }

  int rank() const;
  int size() const;
  int local_rank() const;
  int local_size() const;
  bool is_distributed() const { return size() > 1; }
  bool is_root() const { return rank() == 0; }
  const Launch& launch() const;
  const std::string& backend() const;  // "none" | "gloo" | "nccl"
  double timeout_s() const;
  std::string describe() const;  // "rank 1 of 2 (local 1 of 2), gloo, nproc, store 127.0.0.1:41234 (launcher's)"
  // Wall time spent inside collectives so far (including waiting for slower peers), for bench.
  double comm_seconds() const;

  // Copies root's tensors into every rank's, in place (under NoGradGuard, so parameters can be passed),
  // after checking that all ranks hold the same list of dtypes and shapes.
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0) const;
  // In place: every tensor becomes the sum over ranks. Same-dtype tensors are flattened into buckets of
  // at most `bucket_bytes` (a bigger tensor gets its own), all buckets are in flight at once, then
  // copied back. No division by the world size: the caller scales (see sum_gradients).
  void allreduce_sum(std::vector<torch::Tensor>& tensors, int64_t bucket_bytes = kDefaultBucketBytes) const;
  // Small values (loss statistics, timings), reduced in float64.
  std::vector<double> allreduce(std::vector<double> values, Reduce op = Reduce::Sum) const;
  double allreduce(double value, Reduce op = Reduce::Sum) const;
  void barrier() const;
  // Concatenates every rank's rows [n_r, ...] in rank order and returns the result [sum n_r, ...] on
  // every rank. Row counts may differ (including 0); dtype and trailing shape must match (checked).
  torch::Tensor all_gather_rows(const torch::Tensor& rows) const;
  // Every rank says whether it wants to stop (a non-empty reason) and all get the same verdict.
  StopVerdict agree_stop(const std::string& reason) const;
  // Fails on every rank, naming the ranks that differ, unless all ranks pass the same value
  // (e.g. a hash of the run-defining options or of the parameter names and shapes).
  void expect_same(uint64_t value, const std::string& what) const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Sums the gradients of `params` over all ranks in place (allreduce_sum). A parameter that requires a
// gradient but got none on this rank (its interval did not use it) contributes zeros, so every rank
// reduces the same bucket layout. With per-sample loss weights taken relative to the global batch,
// the sum is the single-process gradient; no division by the world size is needed.
void sum_gradients(const World& world, const std::vector<torch::Tensor>& params,
                   int64_t bucket_bytes = kDefaultBucketBytes);

}  // namespace sdit::dist

#pragma once
// How one optimisation step is put together: which samples (a deterministic per-epoch shuffle, so
// a resumed run sees the same batches) and, for a SparseDiT, how the global batch is split into
// one micro-batch per timestep interval, each run at its interval's sparse grid (docs/method.md §4).
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "diffusion/density_schedule.h"

namespace sdit {

// One micro-batch of a multi-density step: t is drawn uniformly from [t_begin, t_end) and every
// SDTM pools to `grid`. weight = (t_end − t_begin) / T multiplies the micro-batch's mean loss,
// so the accumulated gradient is an unbiased estimate of the uniform-t loss whatever the split.
struct DensityInterval {
  int64_t t_begin = 0, t_end = 1000;
  Grid grid;  // empty: a dense model (no sparse grid)
  int64_t batch = 0;
  double weight = 1.0;
};

// spec: "" or "stages" -> the schedule's four stages with their sides; "K" -> K equal intervals;
// "0,a,b,...,T" -> those boundaries. Custom intervals use the grid at their middle timestep.
// The global batch is shared in proportion to interval length (largest remainder, at least one
// sample each). Throws sdit::Error on malformed specs or a batch smaller than the interval count.
std::vector<DensityInterval> plan_density_intervals(const DensitySchedule& schedule, const std::string& spec,
                                                    int64_t global_batch);
// A dense model: one interval covering [0, T) with no sparse grid.
std::vector<DensityInterval> dense_interval(int64_t T, int64_t global_batch);
std::string describe_intervals(const std::vector<DensityInterval>& intervals);

// Batches of a fixed size over n samples, epoch after epoch: epoch e is a Fisher–Yates shuffle
// driven by std::mt19937_64(seed + e) (its output is fixed by the standard, unlike std::shuffle),
// and the last incomplete batch of each epoch is dropped as DiT's DataLoader(drop_last=True).
// batch(step) depends on nothing but (n, batch, seed, step).
class EpochSampler {
 public:
  EpochSampler(int64_t n, int64_t batch, uint64_t seed);
  std::vector<int64_t> batch(int64_t step);
  int64_t batches_per_epoch() const { return n_ / batch_; }

 private:
  int64_t n_, batch_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

}  // namespace sdit

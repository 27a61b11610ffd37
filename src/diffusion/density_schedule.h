#pragma once
// Timestep-wise token density (docs/method.md §4): which sparse grid the SDTMs pool to at each
// original timestep. Near the data (small t) the model keeps many tokens, near noise few.
//
// Spec strings:
//   full                  dense grid everywhere (the SDTMs pool to H×H, i.e. no pruning)
//   fixed:S               S×S everywhere (the authors' released code uses 8×8)
//   range:RMIN,RMAX       the paper's four stages [0,T/4) [T/4,T/2) [T/2,3T/4) [3T/4,T): stage 0 uses
//                         r_min, stage 3 r_max, stages 1 and 2 Eq. 5 at their midpoints (3T/8, 5T/8)
//   sides:a,b,c,d         the four stage sides given directly, data end (stage [0,T/4)) first
//   per-step:RMIN,RMAX    Eq. 5 evaluated at every timestep (no piecewise-constant stages)
//
// Rates map to sides by s = round(√((1−r)·N)) on a square grid, so the pruning rate actually used
// is 1 − s²/N; a non-square h×w grid keeps its aspect: (round(h·√(1−r)), round(w·√(1−r))). Sides
// (fixed:S, sides:a,b,c,d) are square; fixed:HxW gives a non-square grid. Frames are kept, unless
// the spec ends in /tK (video models): then the sparse grid also pools the frames jointly, F -> ⌈F/K⌉
// (e.g. range:0.61,0.86/t4, full/t2), and the SDTMs' sparse-gen and recovery attend across the sample.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/grid.h"

namespace sdit {

// r(t) of docs/method.md §4: r_min for t < T/4, then linear up to r_max at t = T. t may be fractional so
// that stage midpoints can be evaluated exactly.
double scheduled_rate(double t, int64_t T, double r_min, double r_max);

// round(√((1−r)·N)), clamped to [1, ⌊√N⌋]; N is the dense token count.
int64_t side_for_rate(double r, int64_t dense_tokens);

// The density a SparseDiT uses when the user gives none: the paper's headline setting
// r ∈ [0.61, 0.86] at every resolution (the main row at both 256² and 512²); it maps to 10×10 … 6×6
// at N = 256 and 20×20 … 12×12 at N = 1024, and on the tiny grids of test models the side clamps at
// 1 instead of vanishing.
inline constexpr const char* kDefaultDensity = "range:0.61,0.86";

// `spec` with /tK appended (K > 1), or unchanged (K <= 1): what --temporal-pool K does.
std::string with_temporal_pool(const std::string& spec, int64_t k);

class DensitySchedule {
 public:
  static constexpr int kStages = 4;

  // `dense` is the per-sample dense token grid; T the number of original diffusion steps.
  static DensitySchedule parse(const std::string& spec, const Grid& dense, int64_t T = 1000);
  // A square dense grid of side dense_grid (DiT).
  static DensitySchedule parse(const std::string& spec, int64_t dense_grid, int64_t T = 1000) {
    return parse(spec, square_grid(dense_grid), T);
  }

  // The grid the SDTMs pool to at original timestep t (the dense grid for "full"); a fractional t
  // (PixArt's DPM-Solver feeds 874.125) takes the stage of its integer part.
  Grid grid_at(double t_original) const;
  // Square grids only: the side of grid_at(t).
  int64_t side_at(int64_t t_original) const;
  double rate_at(int64_t t_original) const;   // 1 − M/N, the rate really used
  std::vector<Grid> stage_grids() const;      // data end first; per-step: grids at stage midpoints
  std::vector<int64_t> stage_sides() const;   // square grids: their sides
  std::string describe() const;
  bool is_full() const { return kind_ == Kind::Full && frames_ == dense_.frames; }
  int64_t temporal_pool() const { return temporal_pool_; }  // K of /tK (1: frames kept)
  const std::string& spec() const { return spec_; }
  const Grid& dense() const { return dense_; }
  int64_t dense_grid() const { return dense_.h; }
  int64_t num_timesteps() const { return T_; }

  // Stage k covers original timesteps [first, second): the interval a training micro-batch draws
  // t from when every batch must share one grid side.
  std::pair<int64_t, int64_t> stage_range(int k) const;
  int stage_of(int64_t t_original) const;

 private:
  enum class Kind { Full, Fixed, Range, Sides, PerStep };

  void check_t(int64_t t) const;
  Grid grid_for_rate(double r) const;

  Kind kind_ = Kind::Full;
  std::string spec_;
  Grid dense_;
  int64_t T_ = 1000;
  int64_t frames_ = 1, temporal_pool_ = 1;  // frames of every sparse grid, and the K they came from
  double r_min_ = 0.0, r_max_ = 0.0;  // Range and PerStep
  std::vector<Grid> grids_;           // the four stage grids (all kinds but PerStep)
};

}  // namespace sdit

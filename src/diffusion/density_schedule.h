#pragma once
// Timestep-wise token density (SPEC §4): which sparse grid side s the SDTMs pool to at each
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
// Rates map to sides by s = round(√((1−r)·N)), so the pruning rate actually used is 1 − s²/N.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sdit {

// r(t) of SPEC §4: r_min for t < T/4, then linear up to r_max at t = T. t may be fractional so
// that stage midpoints can be evaluated exactly.
double scheduled_rate(double t, int64_t T, double r_min, double r_max);

// round(√((1−r)·N)), clamped to [1, ⌊√N⌋]; N is the dense token count.
int64_t side_for_rate(double r, int64_t dense_tokens);

// The density a SparseDiT uses when the user gives none. Rule: the paper's headline setting
// r ∈ [0.61, 0.86] at every resolution (it is the main row at both 256² and 512²); it maps to
// 10×10 … 6×6 at N = 256 and 20×20 … 12×12 at N = 1024, and on the tiny grids of test models the
// side clamps at 1 instead of vanishing. N only has to be a positive perfect square.
std::string default_density(int64_t dense_tokens);

class DensitySchedule {
 public:
  static constexpr int kStages = 4;

  // dense_grid is H = W of the dense token grid; T the number of original diffusion steps.
  static DensitySchedule parse(const std::string& spec, int64_t dense_grid, int64_t T = 1000);

  int64_t side_at(int64_t t_original) const;  // dense_grid for "full"
  double rate_at(int64_t t_original) const;   // 1 − side²/N, the rate really used
  std::vector<int64_t> stage_sides() const;   // data end first; per-step: sides at stage midpoints
  std::string describe() const;
  bool is_full() const { return kind_ == Kind::Full; }
  bool is_per_step() const { return kind_ == Kind::PerStep; }
  const std::string& spec() const { return spec_; }
  int64_t dense_grid() const { return grid_; }
  int64_t num_timesteps() const { return T_; }

  // Stage k covers original timesteps [first, second): the interval a training micro-batch draws
  // t from when every batch must share one grid side.
  std::pair<int64_t, int64_t> stage_range(int k) const;
  int stage_of(int64_t t_original) const;

 private:
  enum class Kind { Full, Fixed, Range, Sides, PerStep };

  void check_t(int64_t t) const;

  Kind kind_ = Kind::Full;
  std::string spec_;
  int64_t grid_ = 0;
  int64_t T_ = 1000;
  double r_min_ = 0.0, r_max_ = 0.0;  // Range and PerStep
  std::vector<int64_t> sides_;        // the four stage sides (all kinds but PerStep)
};

}  // namespace sdit

#include "diffusion/density_schedule.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <tuple>

#include "util/error.h"
#include "util/strings.h"

namespace sdit {
namespace {

const char* kForms =
    "expected one of: full | fixed:S | range:RMIN,RMAX | sides:a,b,c,d | per-step:RMIN,RMAX";

double parse_rate(const std::string& text, const std::string& spec) {
  if (text.empty()) fail("density '", spec, "': empty pruning rate; ", kForms);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end == text.c_str() || *end != '\0' || !std::isfinite(v))
    fail("density '", spec, "': '", text, "' is not a number");
  if (v < 0.0 || v >= 1.0)
    fail("density '", spec, "': pruning rate ", text, " is outside [0, 1) (r = 1 - M/N)");
  return v;
}

int64_t parse_side(const std::string& text, const std::string& spec, int64_t grid, const char* axis = "") {
  if (text.empty()) fail("density '", spec, "': empty grid side; ", kForms);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0')
    fail("density '", spec, "': '", text, "' is not an integer grid side");
  if (v < 1 || v > grid)
    fail("density '", spec, "': grid side ", v, " is outside [1, ", grid, "]", axis);
  return static_cast<int64_t>(v);
}

std::pair<double, double> parse_range(const std::string& args, const std::string& spec) {
  const auto parts = split(args);
  if (parts.size() != 2)
    fail("density '", spec, "': expected two rates RMIN,RMAX, got ", parts.size(), " value(s)");
  const double lo = parse_rate(parts[0], spec);
  const double hi = parse_rate(parts[1], spec);
  if (lo > hi) fail("density '", spec, "': r_min ", parts[0], " is larger than r_max ", parts[1]);
  return {lo, hi};
}

}  // namespace

double scheduled_rate(double t, int64_t T, double r_min, double r_max) {
  const double Td = static_cast<double>(T);
  if (4.0 * t < Td) return r_min;
  return (4.0 * Td - 4.0 * t) / (3.0 * Td) * r_min + (4.0 * t - Td) / (3.0 * Td) * r_max;
}

int64_t side_for_rate(double r, int64_t dense_tokens) {
  if (dense_tokens <= 0) fail("side_for_rate: dense token count must be positive, got ", dense_tokens);
  const auto max_side = static_cast<int64_t>(std::floor(std::sqrt(static_cast<double>(dense_tokens)) + 1e-9));
  const double keep = std::max(0.0, 1.0 - r) * static_cast<double>(dense_tokens);
  const auto s = static_cast<int64_t>(std::llround(std::sqrt(keep)));
  return std::clamp<int64_t>(s, 1, max_side);
}

std::string with_temporal_pool(const std::string& spec, int64_t k) {
  return k > 1 ? spec + "/t" + std::to_string(k) : spec;
}

DensitySchedule DensitySchedule::parse(const std::string& spec_in, const Grid& dense, int64_t T) {
  if (dense.empty() || dense.frames < 1) fail("density: the dense token grid must be positive, got ", dense.str());
  if (T < kStages) fail("density: need at least ", kStages, " diffusion steps, got ", T);
  DensitySchedule s;
  s.spec_ = trim(spec_in);
  s.dense_ = dense;
  s.T_ = T;
  std::string spec = s.spec_;
  // A trailing /tK pools the frames too.
  if (const auto slash = spec.rfind("/t"); slash != std::string::npos) {
    s.temporal_pool_ = parse_side(spec.substr(slash + 2), s.spec_, dense.frames, " (the temporal pool /tK divides the frames)");
    spec = spec.substr(0, slash);
  }
  s.frames_ = (dense.frames + s.temporal_pool_ - 1) / s.temporal_pool_;
  const std::string where = " (the dense token grid is " + dense.str() + ")";
  auto square = [&](int64_t side) { return Grid{s.frames_, side, side}; };

  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string args = colon == std::string::npos ? "" : spec.substr(colon + 1);
  const bool has_args = colon != std::string::npos;

  if (kind == "full") {
    if (has_args) fail("density '", spec, "': 'full' takes no arguments");
    s.kind_ = Kind::Full;
    s.grids_.assign(kStages, Grid{s.frames_, dense.h, dense.w});
  } else if (kind == "fixed") {
    const auto parts = split(args);
    if (!has_args || parts.size() != 1) fail("density '", spec, "': expected fixed:S or fixed:HxW");
    s.kind_ = Kind::Fixed;
    const auto x = parts[0].find('x');
    if (x == std::string::npos) {
      s.grids_.assign(kStages, square(parse_side(parts[0], spec, std::min(dense.h, dense.w), where.c_str())));
    } else {
      s.grids_.assign(kStages, Grid{s.frames_, parse_side(parts[0].substr(0, x), spec, dense.h, where.c_str()),
                                    parse_side(parts[0].substr(x + 1), spec, dense.w, where.c_str())});
    }
  } else if (kind == "sides") {
    const auto parts = split(args);
    if (!has_args || parts.size() != static_cast<size_t>(kStages))
      fail("density '", spec, "': expected four stage sides a,b,c,d (data end first), got ",
           has_args ? parts.size() : 0, " value(s)");
    s.kind_ = Kind::Sides;
    for (const auto& p : parts) s.grids_.push_back(square(parse_side(p, spec, std::min(dense.h, dense.w), where.c_str())));
  } else if (kind == "range" || kind == "per-step") {
    if (!has_args) fail("density '", spec, "': expected ", kind, ":RMIN,RMAX");
    std::tie(s.r_min_, s.r_max_) = parse_range(args, spec);
    if (kind == "range") {
      s.kind_ = Kind::Range;
      // The figure's r_j and r_i are the linear schedule's values at the middle stages' centres.
      const double Td = static_cast<double>(T);
      s.grids_ = {s.grid_for_rate(s.r_min_), s.grid_for_rate(scheduled_rate(3.0 * Td / 8.0, T, s.r_min_, s.r_max_)),
                  s.grid_for_rate(scheduled_rate(5.0 * Td / 8.0, T, s.r_min_, s.r_max_)), s.grid_for_rate(s.r_max_)};
    } else {
      s.kind_ = Kind::PerStep;
    }
  } else {
    fail("unknown density '", spec, "'; ", kForms);
  }
  return s;
}

Grid DensitySchedule::grid_for_rate(double r) const {
  if (dense_.square()) {
    const int64_t side = side_for_rate(r, dense_.per_frame());
    return Grid{frames_, side, side};
  }
  // Keep the aspect ratio: each axis scaled by √(1−r), so h'·w' ≈ (1−r)·h·w.
  const double k = std::sqrt(std::max(0.0, 1.0 - r));
  auto axis = [&](int64_t n) { return std::clamp<int64_t>(std::llround(static_cast<double>(n) * k), 1, n); };
  return Grid{frames_, axis(dense_.h), axis(dense_.w)};
}

void DensitySchedule::check_t(int64_t t) const {
  if (t < 0 || t >= T_) fail("density: timestep ", t, " is outside [0, ", T_, ")");
}

int DensitySchedule::stage_of(int64_t t) const {
  check_t(t);
  return static_cast<int>(std::min<int64_t>(kStages - 1, (kStages * t) / T_));
}

std::pair<int64_t, int64_t> DensitySchedule::stage_range(int k) const {
  if (k < 0 || k >= kStages) fail("density: stage ", k, " is outside [0, ", kStages, ")");
  // Stage k holds the t with ⌊4t/T⌋ = k, i.e. t from ⌈kT/4⌉.
  auto first = [this](int64_t j) { return (j * T_ + kStages - 1) / kStages; };
  return {first(k), first(k + 1)};
}

Grid DensitySchedule::grid_at(double t_in) const {
  const auto t = static_cast<int64_t>(std::floor(t_in));
  check_t(t);
  if (kind_ == Kind::PerStep) return grid_for_rate(scheduled_rate(t_in, T_, r_min_, r_max_));
  return grids_[stage_of(t)];
}

int64_t DensitySchedule::side_at(int64_t t) const {
  const Grid g = grid_at(static_cast<double>(t));
  if (!g.square()) fail("density: side_at on the non-square grid ", g.str(), "; use grid_at");
  return g.h;
}

double DensitySchedule::rate_at(int64_t t) const {
  const Grid g = grid_at(static_cast<double>(t));
  return 1.0 - static_cast<double>(g.per_frame()) / static_cast<double>(dense_.per_frame());
}

std::vector<Grid> DensitySchedule::stage_grids() const {
  if (kind_ != Kind::PerStep) return grids_;
  std::vector<Grid> out;
  const double Td = static_cast<double>(T_);
  for (int k = 0; k < kStages; ++k)
    out.push_back(grid_for_rate(scheduled_rate((2.0 * k + 1.0) * Td / 8.0, T_, r_min_, r_max_)));
  return out;
}

std::vector<int64_t> DensitySchedule::stage_sides() const {
  std::vector<int64_t> out;
  for (const auto& g : stage_grids()) {
    if (!g.square()) fail("density: stage_sides on the non-square grid ", g.str(), "; use stage_grids");
    out.push_back(g.h);
  }
  return out;
}

std::string DensitySchedule::describe() const {
  std::ostringstream os;
  const int64_t N = dense_.per_frame();
  auto grids = [](const std::vector<Grid>& v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + (v[i].square() ? std::to_string(v[i].h) : v[i].str());
    return out;
  };
  os << spec_ << " -> ";
  switch (kind_) {
    case Kind::Full:
      os << "dense " << dense_.h << "x" << dense_.w << " (" << N << " tokens) at every t";
      break;
    case Kind::Fixed:
      os << (grids_[0].square() ? "side " + std::to_string(grids_[0].h) : "grid " + grids_[0].str()) << " ("
         << grids_[0].per_frame() << " of " << N << " tokens) at every t";
      break;
    case Kind::Range:
    case Kind::Sides: {
      os << "sides " << grids(grids_) << " over t in";
      for (int k = 0; k < kStages; ++k) {
        const auto [a, b] = stage_range(k);
        os << " [" << a << "," << b << ")";
      }
      break;
    }
    case Kind::PerStep: {
      auto side = [](const Grid& g) { return g.square() ? std::to_string(g.h) : g.str(); };
      os << "side from Eq. 5 at every t: " << side(grid_at(0)) << " for t < " << stage_range(1).first << " down to "
         << side(grid_at(static_cast<double>(T_ - 1))) << " at t = " << T_ - 1 << " (stage midpoints "
         << grids(stage_grids()) << ")";
      break;
    }
  }
  if (frames_ != dense_.frames) os << "; frames pooled " << dense_.frames << " -> " << frames_;
  return os.str();
}

}  // namespace sdit

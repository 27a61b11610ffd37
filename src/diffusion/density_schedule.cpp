#include "diffusion/density_schedule.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <tuple>

#include "util/error.h"

namespace sdit {
namespace {

const char* kForms =
    "expected one of: full | fixed:S | range:RMIN,RMAX | sides:a,b,c,d | per-step:RMIN,RMAX";

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, ',')) out.push_back(trim(cur));
  // getline drops a trailing empty field; keep it so "1,2," is reported as malformed.
  if (!s.empty() && s.back() == ',') out.push_back("");
  return out;
}

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

int64_t parse_side(const std::string& text, const std::string& spec, int64_t grid) {
  if (text.empty()) fail("density '", spec, "': empty grid side; ", kForms);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0')
    fail("density '", spec, "': '", text, "' is not an integer grid side");
  if (v < 1 || v > grid)
    fail("density '", spec, "': grid side ", v, " is outside [1, ", grid,
         "] (the dense token grid is ", grid, "x", grid, ")");
  return static_cast<int64_t>(v);
}

std::pair<double, double> parse_range(const std::string& args, const std::string& spec) {
  const auto parts = split_commas(args);
  if (parts.size() != 2)
    fail("density '", spec, "': expected two rates RMIN,RMAX, got ", parts.size(), " value(s)");
  const double lo = parse_rate(parts[0], spec);
  const double hi = parse_rate(parts[1], spec);
  if (lo > hi) fail("density '", spec, "': r_min ", parts[0], " is larger than r_max ", parts[1]);
  return {lo, hi};
}

std::string join(const std::vector<int64_t>& v) {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
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

std::string default_density(int64_t dense_tokens) {
  const auto g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(std::max<int64_t>(dense_tokens, 0)))));
  if (dense_tokens <= 0 || g * g != dense_tokens)
    fail("default_density: ", dense_tokens, " tokens do not form a square grid");
  return "range:0.61,0.86";
}

DensitySchedule DensitySchedule::parse(const std::string& spec_in, int64_t dense_grid, int64_t T) {
  if (dense_grid < 1) fail("density: dense grid side must be positive, got ", dense_grid);
  if (T < kStages) fail("density: need at least ", kStages, " diffusion steps, got ", T);
  DensitySchedule s;
  s.spec_ = trim(spec_in);
  s.grid_ = dense_grid;
  s.T_ = T;
  const std::string& spec = s.spec_;
  const int64_t N = dense_grid * dense_grid;

  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string args = colon == std::string::npos ? "" : spec.substr(colon + 1);
  const bool has_args = colon != std::string::npos;

  if (kind == "full") {
    if (has_args) fail("density '", spec, "': 'full' takes no arguments");
    s.kind_ = Kind::Full;
    s.sides_.assign(kStages, dense_grid);
  } else if (kind == "fixed") {
    const auto parts = split_commas(args);
    if (!has_args || parts.size() != 1)
      fail("density '", spec, "': expected fixed:S with one grid side");
    s.kind_ = Kind::Fixed;
    s.sides_.assign(kStages, parse_side(parts[0], spec, dense_grid));
  } else if (kind == "sides") {
    const auto parts = split_commas(args);
    if (!has_args || parts.size() != static_cast<size_t>(kStages))
      fail("density '", spec, "': expected four stage sides a,b,c,d (data end first), got ",
           has_args ? parts.size() : 0, " value(s)");
    s.kind_ = Kind::Sides;
    for (const auto& p : parts) s.sides_.push_back(parse_side(p, spec, dense_grid));
  } else if (kind == "range" || kind == "per-step") {
    if (!has_args) fail("density '", spec, "': expected ", kind, ":RMIN,RMAX");
    std::tie(s.r_min_, s.r_max_) = parse_range(args, spec);
    if (kind == "range") {
      s.kind_ = Kind::Range;
      // The figure's r_j and r_i are the linear schedule's values at the middle stages' centres.
      const double Td = static_cast<double>(T);
      s.sides_ = {side_for_rate(s.r_min_, N),
                  side_for_rate(scheduled_rate(3.0 * Td / 8.0, T, s.r_min_, s.r_max_), N),
                  side_for_rate(scheduled_rate(5.0 * Td / 8.0, T, s.r_min_, s.r_max_), N),
                  side_for_rate(s.r_max_, N)};
    } else {
      s.kind_ = Kind::PerStep;
    }
  } else {
    fail("unknown density '", spec, "'; ", kForms);
  }
  return s;
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

int64_t DensitySchedule::side_at(int64_t t) const {
  check_t(t);
  if (kind_ == Kind::PerStep)
    return side_for_rate(scheduled_rate(static_cast<double>(t), T_, r_min_, r_max_), grid_ * grid_);
  return sides_[stage_of(t)];
}

double DensitySchedule::rate_at(int64_t t) const {
  const auto s = static_cast<double>(side_at(t));
  return 1.0 - s * s / static_cast<double>(grid_ * grid_);
}

std::vector<int64_t> DensitySchedule::stage_sides() const {
  if (kind_ != Kind::PerStep) return sides_;
  std::vector<int64_t> out;
  const double Td = static_cast<double>(T_);
  for (int k = 0; k < kStages; ++k)
    out.push_back(side_for_rate(scheduled_rate((2.0 * k + 1.0) * Td / 8.0, T_, r_min_, r_max_), grid_ * grid_));
  return out;
}

std::string DensitySchedule::describe() const {
  std::ostringstream os;
  const int64_t N = grid_ * grid_;
  os << spec_ << " -> ";
  switch (kind_) {
    case Kind::Full:
      os << "dense " << grid_ << "x" << grid_ << " (" << N << " tokens) at every t";
      break;
    case Kind::Fixed:
      os << "side " << sides_[0] << " (" << sides_[0] * sides_[0] << " of " << N << " tokens) at every t";
      break;
    case Kind::Range:
    case Kind::Sides: {
      os << "sides " << join(sides_) << " over t in";
      for (int k = 0; k < kStages; ++k) {
        const auto [a, b] = stage_range(k);
        os << " [" << a << "," << b << ")";
      }
      break;
    }
    case Kind::PerStep:
      os << "side from Eq. 5 at every t: " << side_at(0) << " for t < " << stage_range(1).first
         << " down to " << side_at(T_ - 1) << " at t = " << T_ - 1 << " (stage midpoints "
         << join(stage_sides()) << ")";
      break;
  }
  return os.str();
}

}  // namespace sdit

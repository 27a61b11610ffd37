#include "diffusion/respace.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <set>

#include "util/error.h"
#include "util/strings.h"

namespace sdit {

namespace {

// Stricter than Python's int(): only plain positive decimal counts make sense as step counts.
int64_t parse_count(const std::string& raw, const std::string& spec) {
  const std::string s = trim(raw);
  if (s.empty() || s.size() > 12 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    fail("invalid timestep respacing '", spec, "': '", raw,
         "' is not a positive step count (expected e.g. \"250\", \"ddim50\" or \"10,15,20\")");
  const int64_t v = std::stoll(s);
  if (v <= 0) fail("invalid timestep respacing '", spec, "': step counts must be positive");
  return v;
}

// Python's round() on a float is round-half-to-even; nearbyint does that only under the
// default rounding mode, so make sure nobody changed it.
int64_t round_half_even(double x) {
  const int saved = std::fegetround();
  if (saved != FE_TONEAREST) std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(x);
  if (saved != FE_TONEAREST) std::fesetround(saved);
  return static_cast<int64_t>(r);
}

}  // namespace

std::vector<int64_t> space_timesteps(int64_t num_timesteps, const std::string& spec_in) {
  if (num_timesteps <= 0) fail("space_timesteps: the diffusion needs at least one step, got ", num_timesteps);
  const std::string spec = trim(spec_in);
  std::vector<int64_t> out;
  if (spec.empty()) {
    for (int64_t i = 0; i < num_timesteps; ++i) out.push_back(i);
    return out;
  }

  if (spec.rfind("ddim", 0) == 0) {
    const int64_t desired = parse_count(spec.substr(4), spec);
    for (int64_t stride = 1; stride < num_timesteps; ++stride) {
      const int64_t count = (num_timesteps + stride - 1) / stride;  // len(range(0, T, stride))
      if (count == desired) {
        for (int64_t i = 0; i < num_timesteps; i += stride) out.push_back(i);
        return out;
      }
    }
    fail("invalid timestep respacing '", spec, "': cannot create exactly ", desired, " steps out of ",
         num_timesteps, " with an integer stride");
  }

  std::vector<int64_t> counts;
  size_t pos = 0;
  while (true) {
    const size_t comma = spec.find(',', pos);
    counts.push_back(parse_count(spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos), spec));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  const int64_t n_sections = static_cast<int64_t>(counts.size());
  if (n_sections > num_timesteps)
    fail("invalid timestep respacing '", spec, "': ", n_sections, " sections for only ", num_timesteps, " steps");
  const int64_t size_per = num_timesteps / n_sections;
  const int64_t extra = num_timesteps % n_sections;

  std::set<int64_t> steps;
  int64_t start = 0;
  for (int64_t i = 0; i < n_sections; ++i) {
    const int64_t size = size_per + (i < extra ? 1 : 0);
    const int64_t count = counts[i];
    if (size < count)
      fail("invalid timestep respacing '", spec, "': cannot divide a section of ", size, " steps into ", count);
    const double frac_stride =
        count <= 1 ? 1.0 : static_cast<double>(size - 1) / static_cast<double>(count - 1);
    // Accumulated by repeated addition, not i * stride: the reference's rounding depends on it.
    double cur = 0.0;
    for (int64_t k = 0; k < count; ++k) {
      steps.insert(start + round_half_even(cur));
      cur += frac_stride;
    }
    start += size;
  }
  out.assign(steps.begin(), steps.end());
  return out;
}

}  // namespace sdit

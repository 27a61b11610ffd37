#include "train/batching.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "util/error.h"

namespace sdit {
namespace {

std::vector<int64_t> parse_boundaries(const std::string& spec, int64_t T) {
  std::vector<int64_t> b;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t pos = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos == 0 || pos != item.size())
      fail("--density-intervals '", spec, "': '", item, "' is not an integer (use stages, a count K, or boundaries 0,...,", T, ")");
    b.push_back(v);
  }
  if (b.size() == 1) {
    const int64_t k = b[0];
    if (k < 1 || k > T) fail("--density-intervals ", k, ": the interval count must lie in [1, ", T, "]");
    b.clear();
    for (int64_t i = 0; i <= k; ++i) b.push_back(i * T / k);
    return b;
  }
  if (b.front() != 0 || b.back() != T)
    fail("--density-intervals '", spec, "': boundaries must start at 0 and end at ", T);
  for (size_t i = 1; i < b.size(); ++i)
    if (b[i] <= b[i - 1]) fail("--density-intervals '", spec, "': boundaries must increase strictly");
  return b;
}

// Largest-remainder split of `total` in proportion to `lengths`, at least one each.
std::vector<int64_t> proportional_split(const std::vector<int64_t>& lengths, int64_t total) {
  const int64_t k = static_cast<int64_t>(lengths.size());
  if (total < k)
    fail("the global batch (", total, ") is smaller than the number of density intervals (", k,
         "): every interval needs at least one sample per step");
  const int64_t sum = std::accumulate(lengths.begin(), lengths.end(), int64_t{0});
  std::vector<int64_t> out(k);
  std::vector<std::pair<int64_t, int64_t>> rem;  // (remainder numerator, index)
  int64_t used = 0;
  for (int64_t i = 0; i < k; ++i) {
    out[i] = total * lengths[i] / sum;
    rem.push_back({total * lengths[i] % sum, i});
    used += out[i];
  }
  std::stable_sort(rem.begin(), rem.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (int64_t j = 0; used < total; ++j, ++used) out[rem[j % k].second] += 1;
  // Short intervals may round to nothing: take one sample from the largest share.
  for (int64_t i = 0; i < k; ++i) {
    while (out[i] == 0) {
      auto big = std::max_element(out.begin(), out.end()) - out.begin();
      out[big] -= 1;
      out[i] += 1;
    }
  }
  return out;
}

}  // namespace

std::vector<DensityInterval> plan_density_intervals(const DensitySchedule& schedule, const std::string& spec,
                                                    int64_t global_batch) {
  const int64_t T = schedule.num_timesteps();
  std::vector<DensityInterval> out;
  if (spec.empty() || spec == "stages") {
    const auto grids = schedule.stage_grids();
    for (int k = 0; k < DensitySchedule::kStages; ++k) {
      auto [a, b] = schedule.stage_range(k);
      out.push_back({a, b, grids[k], 0, 0.0});
    }
  } else {
    const auto b = parse_boundaries(spec, T);
    for (size_t i = 0; i + 1 < b.size(); ++i) out.push_back({b[i], b[i + 1], schedule.grid_at(static_cast<double>((b[i] + b[i + 1] - 1) / 2)), 0, 0.0});
  }
  std::vector<int64_t> lengths;
  for (auto& iv : out) lengths.push_back(iv.t_end - iv.t_begin);
  const auto sizes = proportional_split(lengths, global_batch);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].batch = sizes[i];
    out[i].weight = static_cast<double>(lengths[i]) / static_cast<double>(T);
  }
  return out;
}

std::vector<DensityInterval> dense_interval(int64_t T, int64_t global_batch) {
  return {DensityInterval{0, T, Grid{}, global_batch, 1.0}};
}

std::string describe_intervals(const std::vector<DensityInterval>& intervals) {
  std::ostringstream os;
  for (size_t i = 0; i < intervals.size(); ++i) {
    const auto& iv = intervals[i];
    os << (i ? ", " : "") << "t in [" << iv.t_begin << "," << iv.t_end << ")";
    if (!iv.grid.empty()) os << (iv.grid.square() ? " side " + std::to_string(iv.grid.h) : " grid " + iv.grid.str());
    os << " x" << iv.batch;
  }
  return os.str();
}

EpochSampler::EpochSampler(int64_t n, int64_t batch, uint64_t seed) : n_(n), batch_(batch), seed_(seed) {
  if (batch <= 0) fail("the global batch size must be positive, got ", batch);
  if (n < batch) fail("the dataset has ", n, " samples, fewer than one global batch of ", batch);
}

std::vector<int64_t> EpochSampler::batch(int64_t step) {
  const int64_t per_epoch = batches_per_epoch();
  const int64_t epoch = step / per_epoch;
  if (epoch != epoch_) {
    perm_.resize(n_);
    std::iota(perm_.begin(), perm_.end(), int64_t{0});
    std::mt19937_64 rng(seed_ + static_cast<uint64_t>(epoch));
    for (int64_t i = n_ - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
      std::swap(perm_[i], perm_[j]);
    }
    epoch_ = epoch;
  }
  const int64_t start = (step % per_epoch) * batch_;
  return {perm_.begin() + start, perm_.begin() + start + batch_};
}

}  // namespace sdit

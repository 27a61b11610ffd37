#include "dist/selftest.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <thread>

#include "dist/buckets.h"
#include "util/error.h"
#include "util/keyed_rng.h"

namespace sdit::dist {
namespace {

struct Check {
  std::string name;
  bool ok = false;
  std::string detail;
};

// A rank's tensors for the broadcast and all-reduce checks: mixed dtypes and sizes, a pure function of
// `seed`, so every rank can compute any other rank's contribution by itself.
std::vector<torch::Tensor> tensors_of(uint64_t seed) {
  const KeyedDraws d(seed, 0);
  const std::vector<std::vector<int64_t>> shapes{{1000}, {3, 7}, {50000}, {1}, {2048, 3}, {4, 4, 4}};
  std::vector<torch::Tensor> v;
  for (size_t i = 0; i < shapes.size(); ++i) v.push_back(d.randn(RngStream::Noise, {int64_t(i)}, shapes[i])[0]);
  v.push_back(d.randn(RngStream::Noise, {99}, {33}, torch::kDouble)[0]);
  v.push_back(d.randint(RngStream::ClassLabel, sample_range(0, 5), -1000, 1000));
  return v;
}

Check check_broadcast(const World& w) {
  auto mine = tensors_of(1000 + static_cast<uint64_t>(w.rank()));
  w.broadcast(mine, 0);
  const auto want = tensors_of(1000);
  bool ok = true;
  for (size_t i = 0; i < mine.size(); ++i) ok = ok && torch::equal(mine[i], want[i]);
  return {"broadcast from rank 0 (mixed dtypes)", ok, ok ? "identical" : "differs from rank 0's tensors"};
}

// The bucketed sum against a left-to-right sum every rank computes alone. Two ranks must agree to the
// bit (a + b is commutative); more ranks differ by the ring's summation order, within float rounding.
Check check_allreduce(const World& w, int64_t bucket_bytes) {
  auto mine = tensors_of(2000 + static_cast<uint64_t>(w.rank()));
  auto want = tensors_of(2000);
  for (int r = 1; r < w.size(); ++r) {
    const auto other = tensors_of(2000 + static_cast<uint64_t>(r));
    for (size_t i = 0; i < want.size(); ++i) want[i] = want[i] + other[i];
  }
  const size_t buckets = plan_buckets(mine, bucket_bytes).size();
  w.allreduce_sum(mine, bucket_bytes);
  double worst = 0;
  bool exact = true;
  for (size_t i = 0; i < mine.size(); ++i) {
    exact = exact && torch::equal(mine[i], want[i]);
    const auto a = mine[i].to(torch::kDouble), b = want[i].to(torch::kDouble);
    worst = std::max(worst, ((a - b).norm() / b.norm().clamp_min(1e-30)).item<double>());
  }
  const bool ok = w.size() == 2 ? exact : worst <= 1e-6;
  char d[160];
  std::snprintf(d, sizeof d, "%zu bucket(s) of <= %lld B, %s%.2e vs a left-to-right sum", buckets,
                static_cast<long long>(bucket_bytes), exact ? "bit-identical, rel. L2 " : "rel. L2 ", worst);
  return {"allreduce_sum (bucketed)", ok, d};
}

// Rank r contributes r rows (rank 0 none); the result is every rank's rows in rank order.
Check check_gather(const World& w) {
  auto rows_of = [](int r) {
    return (torch::arange(r * 12, torch::kLong).reshape({r, 2, 2, 3}) % 251 + r).to(torch::kByte);
  };
  const auto got = w.all_gather_rows(rows_of(w.rank()));
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < w.size(); ++r) parts.push_back(rows_of(r));
  const bool ok = torch::equal(got, torch::cat(parts));
  return {"all_gather_rows (uint8, 0.." + std::to_string(w.size() - 1) + " rows per rank)", ok,
          std::to_string(got.size(0)) + " rows"};
}

Check check_stop(const World& w) {
  const auto none = w.agree_stop("");
  const std::string why = "rank " + std::to_string(w.size() - 1) + " saw a NaN loss";
  const auto last = w.agree_stop(w.rank() == w.size() - 1 ? why : "");
  const bool ok = !none.stop && last.stop && last.rank == w.size() - 1 && last.count == 1 && last.reason == why;
  return {"agree_stop (the last rank votes to stop)", ok, last.message()};
}

Check check_scalars(const World& w) {
  const int n = w.size();
  const auto s = w.allreduce(std::vector<double>{w.rank() + 1.0, 0.5});
  const double mx = w.allreduce(w.rank() + 1.0, Reduce::Max), mn = w.allreduce(w.rank() + 1.0, Reduce::Min);
  w.expect_same(0x5eed, "a constant");
  bool caught = false;  // a value that differs must fail on every rank, and leave the world usable
  try {
    w.expect_same(static_cast<uint64_t>(w.rank()), "the rank number");
  } catch (const Error&) {
    caught = true;
  }
  w.barrier();
  const bool ok = s[0] == n * (n + 1) / 2.0 && s[1] == 0.5 * n && mx == n && mn == 1 && caught == (n > 1);
  return {"allreduce of scalars (sum/max/min), expect_same, barrier", ok, ""};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The slowest rank's median seconds of `op` over `iters` repetitions, each after a barrier.
template <typename Op>
double timed(const World& w, int iters, Op op) {
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    w.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    op();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return w.allreduce(median(t), Reduce::Max);
}

void time_allreduce(const World& w, const SelfTestOptions& o, std::ostream& out) {
  const int64_t n = std::max<int64_t>(1, static_cast<int64_t>(o.mb * 1e6 / 4));
  const int64_t per_bucket = kDefaultBucketBytes / 4;
  // (a) one flat tensor; (b) the same memory as 25 MiB views, reduced in place, all in flight;
  // (c) the same bytes as 1 MB "gradients" in 25 MiB buckets, flatten and copy back included.
  std::vector<torch::Tensor> one{torch::ones({n})};
  auto flat = torch::ones({n});
  std::vector<torch::Tensor> views, grads;
  for (int64_t off = 0; off < n; off += per_bucket) views.push_back(flat.narrow(0, off, std::min(per_bucket, n - off)));
  for (int64_t off = 0; off < n; off += 262144) grads.push_back(torch::ones({std::min<int64_t>(262144, n - off)}));
  const double t_one = timed(w, o.iters, [&] { w.allreduce_sum(one, int64_t{1} << 62); });
  const double t_views = timed(w, o.iters, [&] { w.allreduce_sum(views); });
  const double t_grads = timed(w, o.iters, [&] { w.allreduce_sum(grads); });
  if (!w.is_root()) return;
  const double bytes = 4.0 * static_cast<double>(n);
  auto row = [&](const std::string& what, double t) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-60s %.4f s  %.2f GB/s\n", what.c_str(), t, bytes / t / 1e9);
    out << line;
  };
  out << "allreduce_sum of " << bytes / 1e6 << " MB fp32 over " << w.size() << " ranks (" << w.backend()
      << "), median of " << o.iters << ", slowest rank:\n";
  row("one tensor", t_one);
  row(std::to_string(views.size()) + " views of <= 25 MiB, in place, all in flight", t_views);
  row(std::to_string(grads.size()) + " tensors of <= 1 MB in " + std::to_string(plan_buckets(grads, kDefaultBucketBytes).size()) +
          " buckets (flatten + copy back)",
      t_grads);
}

}  // namespace

bool run_selftest(const World& w, const SelfTestOptions& o, std::ostream& out) {
  if (w.rank() == o.fail_rank) {
    std::fprintf(stderr, "dist-check: rank %d exits before the first collective (--fail-rank)\n", w.rank());
    std::fflush(nullptr);
    std::_Exit(3);
  }
  if (w.rank() == o.stall_rank) std::this_thread::sleep_for(std::chrono::duration<double>(2 * w.timeout_s()));
  if (w.is_root()) out << "dist-check: " << w.describe() << ", timeout " << w.timeout_s() << " s\n";
  std::vector<Check> checks{check_broadcast(w), check_allreduce(w, 4096), check_allreduce(w, kDefaultBucketBytes),
                            check_gather(w), check_stop(w), check_scalars(w)};
  bool ok = true;
  for (const auto& c : checks) ok = ok && c.ok;
  ok = w.allreduce(ok ? 1.0 : 0.0, Reduce::Min) == 1.0;  // passed only if passed everywhere
  for (const auto& c : checks) {
    const std::string line = std::string(c.ok ? "ok  " : "FAIL") + "  " + c.name + (c.detail.empty() ? "" : ": " + c.detail);
    if (w.is_root()) out << "  " << line << "\n";
    else if (!c.ok) std::fprintf(stderr, "dist-check rank %d: %s\n", w.rank(), line.c_str());
  }
  if (o.mb > 0) time_allreduce(w, o, out);
  if (w.is_root()) out << "dist-check: " << (ok ? "all checks passed on every rank" : "FAILED") << std::endl;
  return ok;
}

}  // namespace sdit::dist

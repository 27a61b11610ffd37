#include "eval/fid.h"

#include <algorithm>
#include <cmath>

#include "util/compat.h"
#include "util/error.h"

namespace sdit {

FeatureStats feature_stats(const torch::Tensor& features) {
  if (features.dim() != 2) fail("features must be (N, D), got ", shape_str(features.sizes().vec()));
  const int64_t n = features.size(0);
  if (n < 2) fail("a covariance needs at least 2 feature vectors, got ", n);
  auto f = features.detach().to(torch::kCPU, torch::kDouble);
  FeatureStats s;
  s.mu = f.mean(0);
  auto c = f - s.mu;
  s.sigma = c.t().mm(c) / static_cast<double>(n - 1);  // np.cov(rowvar=False): unbiased
  s.count = n;
  return s;
}

void check_stats(const FeatureStats& s, const std::string& what) {
  if (!s.mu.defined() || !s.sigma.defined()) fail(what, ": statistics need both mu and sigma");
  if (s.mu.dim() != 1) fail(what, ": mu must be 1-D, got ", shape_str(s.mu.sizes().vec()));
  const int64_t d = s.mu.size(0);
  if (s.sigma.dim() != 2 || s.sigma.size(0) != d || s.sigma.size(1) != d)
    fail(what, ": sigma must be (", d, ", ", d, ") to match mu, got ", shape_str(s.sigma.sizes().vec()));
  if (d == 0) fail(what, ": statistics are empty");
  if (!torch::isfinite(s.mu).all().item<bool>() || !torch::isfinite(s.sigma).all().item<bool>())
    fail(what, ": mu or sigma holds non-finite values");
}

torch::Tensor sqrtm_psd(const torch::Tensor& a) {
  auto a64 = a.to(torch::kDouble);
  // eigh reads one triangle; symmetrizing first makes the result independent of which.
  auto [w, v] = compat::eigh((a64 + a64.t()) * 0.5);
  return (v * w.clamp_min(0).sqrt().unsqueeze(0)).mm(v.t());
}

double trace_sqrt_product(const torch::Tensor& sigma1, const torch::Tensor& sigma2) {
  auto r1 = sqrtm_psd(sigma1);
  auto m = r1.mm(sigma2.to(torch::kDouble)).mm(r1);
  auto w = std::get<0>(compat::eigh((m + m.t()) * 0.5));
  return w.clamp_min(0).sqrt().sum().item<double>();
}

namespace {

double frechet_once(const FeatureStats& a, const FeatureStats& b, double offset) {
  auto s1 = a.sigma.to(torch::kDouble), s2 = b.sigma.to(torch::kDouble);
  if (offset != 0) {
    auto eye = torch::eye(s1.size(0), s1.options()) * offset;
    s1 = s1 + eye;
    s2 = s2 + eye;
  }
  auto diff = a.mu.to(torch::kDouble) - b.mu.to(torch::kDouble);
  double tr;
  try {
    tr = trace_sqrt_product(s1, s2);
  } catch (const c10::Error&) {
    // LAPACK reports non-convergence on pathological inputs; treated like scipy's non-finite sqrtm.
    return NAN;
  }
  return diff.dot(diff).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() - 2 * tr;
}

}  // namespace

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  check_stats(a, "first statistics");
  check_stats(b, "second statistics");
  if (a.mu.size(0) != b.mu.size(0))
    fail("statistics have different feature dimensions (", a.mu.size(0), " and ", b.mu.size(0),
         "): they come from different feature extractors");
  double d = frechet_once(a, b, 0.0);
  if (!std::isfinite(d)) d = frechet_once(a, b, 1e-6);
  if (!std::isfinite(d)) fail("the Fréchet distance is not finite even with 1e-6 added to the covariances");
  return d;
}

namespace {

// Squared L2 distances between rows, ‖a‖² − 2abᵀ + ‖b‖² as the evaluator's DistanceBlock; clamped at
// 0 because cancellation can make a point's distance to itself slightly negative.
torch::Tensor sq_dist(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bn) {
  auto an = a.pow(2).sum(1, true);
  return (an - 2 * a.mm(b.t()) + bn.unsqueeze(0)).clamp_min(0);
}

int64_t block_rows(int64_t cols) { return std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(cols, 1)); }

torch::Tensor knn_radii(const torch::Tensor& x, int64_t k) {
  const int64_t n = x.size(0);
  auto xn = x.pow(2).sum(1);
  auto radii = torch::empty({n}, x.options());
  const int64_t step = block_rows(n);
  for (int64_t s = 0; s < n; s += step) {
    const int64_t e = std::min(n, s + step);
    // kthvalue counts from 1 and the point itself is the nearest (distance 0): k+1 skips it.
    radii.slice(0, s, e).copy_(std::get<0>(torch::kthvalue(sq_dist(x.slice(0, s, e), x, xn), k + 1, 1)));
  }
  return radii;
}

// Fraction of rows of `x` within the ball of at least one row of `centers`.
double coverage(const torch::Tensor& x, const torch::Tensor& centers, const torch::Tensor& radii) {
  auto cn = centers.pow(2).sum(1);
  const int64_t n = x.size(0), step = block_rows(centers.size(0));
  int64_t inside = 0;
  for (int64_t s = 0; s < n; s += step) {
    const int64_t e = std::min(n, s + step);
    auto d = sq_dist(x.slice(0, s, e), centers, cn);
    inside += d.le(radii.unsqueeze(0)).any(1).sum().item<int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(n);
}

}  // namespace

PrecisionRecall precision_recall(const torch::Tensor& reference, const torch::Tensor& samples, int64_t k) {
  if (reference.dim() != 2 || samples.dim() != 2 || reference.size(1) != samples.size(1))
    fail("precision/recall needs two (N, D) feature sets of equal D, got ", shape_str(reference.sizes().vec()),
         " and ", shape_str(samples.sizes().vec()));
  if (k < 1) fail("precision/recall: k must be >= 1, got ", k);
  if (reference.size(0) <= k || samples.size(0) <= k)
    fail("precision/recall with k=", k, " needs more than ", k, " images in each set (got ", reference.size(0),
         " and ", samples.size(0), ")");
  torch::NoGradGuard ng;
  auto r = reference.detach().to(torch::kCPU, torch::kFloat).contiguous();
  auto x = samples.detach().to(torch::kCPU, torch::kFloat).contiguous();
  auto rr = knn_radii(r, k), xr = knn_radii(x, k);
  PrecisionRecall pr;
  pr.precision = coverage(x, r, rr);
  pr.recall = coverage(r, x, xr);
  return pr;
}

}  // namespace sdit

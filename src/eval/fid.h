#pragma once
// Fréchet Inception Distance and Kynkäänniemi precision/recall on feature vectors, following the
// ADM evaluator (guided-diffusion/evaluations/evaluator.py): statistics in float64, np.cov with
// rowvar=False (unbiased, N−1), and FID = ‖μ1−μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr √(Σ1Σ2).
#include <torch/torch.h>

#include <cstdint>

#include "dist/world.h"

namespace sdit {

struct FeatureStats {
  torch::Tensor mu;     // (D) float64
  torch::Tensor sigma;  // (D, D) float64
  int64_t count = 0;    // images behind the statistics; 0 when read from a file that does not say
};

// features: (N, D), N >= 2. Computed in float64 whatever the input dtype.
FeatureStats feature_stats(const torch::Tensor& features);
// The same statistics when each rank holds some of the rows (docs/distributed.md §8.4): n and Σx, then
// Σ (x−μ)(x−μ)ᵀ are summed over the ranks in float64, so μ and Σ differ from one process's only by the
// order of float64 partial sums. A rank may hold no rows.
FeatureStats feature_stats(const dist::World& world, const torch::Tensor& local_features);
// Throws sdit::Error unless mu is (D), sigma (D, D), both finite; `what` names the source.
void check_stats(const FeatureStats& s, const std::string& what);

// Symmetric PSD square root via eigh: V diag(√max(λ, 0)) Vᵀ. Eigenvalues below zero are rounding
// noise of a PSD matrix (covariances from fewer samples than dimensions are singular), hence the clamp.
torch::Tensor sqrtm_psd(const torch::Tensor& a);

// Tr √(Σ1 Σ2) for symmetric PSD Σ1, Σ2, computed as Tr √(√Σ1 Σ2 √Σ1): the two products are similar
// (same eigenvalues), and the second is symmetric PSD, so a symmetric eigendecomposition suffices
// where scipy.linalg.sqrtm needs a complex Schur form.
double trace_sqrt_product(const torch::Tensor& sigma1, const torch::Tensor& sigma2);

// The Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2). As in the ADM evaluator, a non-finite
// result (or an eigensolver that does not converge) is retried with 1e-6·I added to both
// covariances. Throws sdit::Error on mismatched dimensions.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

struct PrecisionRecall {
  double precision = 0;  // fraction of samples inside at least one reference k-NN ball
  double recall = 0;     // fraction of references inside at least one sample k-NN ball
};

// Improved precision and recall (Kynkäänniemi et al. 2019) as the ADM evaluator computes them: each
// point's radius is the squared L2 distance to its k-th nearest neighbour within its own set (the
// point itself excluded); a point is covered when its squared distance to some point of the other
// set is <= that point's radius. Distances in float32 (the evaluator uses float16 when finite), in
// blocks so memory stays O(block · N). Each set needs more than k points.
PrecisionRecall precision_recall(const torch::Tensor& reference, const torch::Tensor& samples, int64_t k = 3);

}  // namespace sdit

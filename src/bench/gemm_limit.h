#pragma once
// The GEMM limit of a forward: the rate (GFLOP/s) at which this machine's BLAS runs the very matrix
// products the forward issues — the same shapes (linear layers, attention scores and values), the
// same dtype, thread count and device — each timed alone. A forward can only approach this rate,
// since everything else it does (norms, softmax, activations, copies) adds time but no counted FLOPs;
// `bench` prints the achieved rate as a share of it.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <tuple>

namespace sdit {

// (batch, m, k, n) of one product: batch 1 for mm/addmm.
using GemmShape = std::tuple<int64_t, int64_t, int64_t, int64_t>;

// How often each shape is issued; `weight` multiplies what one recording adds (e.g. the number of
// sampling steps that run that forward).
struct GemmShapes {
  std::map<GemmShape, double> count;
  void add(const GemmShapes& other, double weight);
  double flops() const;  // 2·b·m·k·n summed with the counts
};

// Runs `fn` on this thread with a RecordFunction callback that notes the shape of every aten::mm,
// addmm, bmm and baddbmm it calls (one profile or recording at a time).
GemmShapes record_gemm_shapes(const std::function<void()>& fn);

// Times each shape alone (random operands, `reps` timed products after one warm-up, at least
// `min_ms` per shape) and returns Σ count·flops / Σ count·time in GFLOP/s.
double measure_gemm_rate(const GemmShapes& shapes, torch::Dtype dtype, const torch::Device& device, int reps = 3,
                         double min_ms = 20.0);

}  // namespace sdit

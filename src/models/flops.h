#pragma once
// Analytic compute of one forward pass for one sample, in multiply–accumulates (what DiT and the
// SparseDiT paper report as "GFLOPs"), counted exactly as SPEC §6: linear layers and the two
// attention matmuls; norms, softmax, activations, modulation and residual adds are not counted.
// With classifier-free guidance a sampling step runs the batch twice, so it costs twice this.
#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/density_schedule.h"
#include "models/config.h"

namespace sdit {

struct FlopsSegment {
  std::string name;
  double macs = 0.0;
  int64_t blocks = 0;  // transformer blocks in the segment; 0 for the embedders and final layer
};

struct FlopsReport {
  std::vector<FlopsSegment> segments;  // in forward order
  double total_macs = 0.0;
};

// Dense DiT: embedders (patch + timestep MLP; the label lookup is free), blocks, final layer.
FlopsReport dense_flops(const DiTConfig& cfg);

// SparseDiT with every SDTM pooling to side×side (M = side²) tokens. Segments: embedders,
// poolingformers, sdtm sparse-gen / sparse / recovery / dense (summed over the SDTMs), top, final;
// empty segments of the layout are left out. Throws when the layout's depth is not cfg.depth or
// side is outside [1, grid].
FlopsReport sparse_flops(const DiTConfig& cfg, const SparseLayout& layout, int64_t side);

// Mean GMACs (1e9) of one forward over the original timesteps the sampler visits; layout == nullptr
// means the dense DiT, for which the schedule must be "full".
double mean_gmacs(const DiTConfig& cfg, const SparseLayout* layout, const DensitySchedule& sched,
                  const std::vector<int64_t>& original_timesteps);

}  // namespace sdit

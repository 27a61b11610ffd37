#pragma once
// Analytic compute of one forward pass for one sample, in multiply–accumulates (what DiT and the
// SparseDiT paper report as "GFLOPs"), counted as docs/method.md §6: linear layers and the two
// attention matmuls; norms, softmax, activations, modulation and residual adds are not counted.
// With classifier-free guidance a sampling step runs the batch twice, so it costs twice this.
//
// The per-block formulas are written once for the shared block (models/block.h); a family adds its
// embedders, head, per-block modulation cost and any extra sub-layer (PixArt's cross-attention).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/grid.h"
#include "models/trunk.h"

namespace sdit {

struct FlopsSegment {
  std::string name;
  double macs = 0.0;
  int64_t blocks = 0;  // transformer blocks in the segment; 0 for the embedders and the head
};

struct FlopsReport {
  std::vector<FlopsSegment> segments;  // in forward order
  double total_macs = 0.0;
  double gmacs() const { return total_macs / 1e9; }
};

// What one block costs besides its token mixer and MLP.
struct BlockCosts {
  double hidden = 0;      // C
  double mlp_hidden = 0;  // int(C · mlp_ratio)
  double modulation = 0;  // per block: DiT's adaLN Linear 6C²; 0 for adaLN-single (counted once)
  // The family's extra sub-layer on T tokens: per_token·T + fixed (PixArt: cross-attention).
  double extra_per_token = 0, extra_fixed = 0;
  // Tokens per attention sequence of block `slot` on `grid` (default: one frame's tokens).
  std::function<double(const BlockSlot& slot, const Grid& grid)> sequence;
  // Rows the modulation Linear runs on in block `slot` whose output is on `grid` (default 1: once per
  // sample). Latte's reference repeats the conditioning over every frame (spatial blocks) or every
  // location (temporal blocks) and runs the adaLN Linear on each row.
  std::function<double(const BlockSlot& slot, const Grid& grid)> modulation_rows;
};

// The trunk's blocks, segmented as the table of `sparsedit flops` prints them: "blocks" for a dense
// trunk; "poolingformers", "sdtm sparse-gen", "sdtm sparse", "sdtm recovery", "sdtm dense", "top"
// for a SparseDiT (empty segments left out). Throws when the sparse grid lies outside the dense one.
std::vector<FlopsSegment> trunk_flops(const BlockCosts& costs, int64_t depth, const SparseLayout* layout,
                                      const Grid& dense, const Grid& sparse);

// embedders + trunk + head, totalled.
FlopsReport make_report(FlopsSegment embedders, std::vector<FlopsSegment> trunk, FlopsSegment head);

}  // namespace sdit

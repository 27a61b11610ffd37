#include "models/flops.h"

#include <algorithm>

#include "util/error.h"

namespace sdit {
namespace {

// The docs/method.md §6 terms with the MLP width explicit, so that mlp_ratio 4 gives the familiar
// 12C²N of a dense block (4C² for qkv + proj, 8C² for the MLP).
struct Terms {
  const BlockCosts& k;
  double rows = 1;  // modulation rows of the block being costed
  double C2() const { return k.hidden * k.hidden; }
  double mlp(double t) const { return 2 * k.hidden * k.mlp_hidden * t; }
  double tail(double t) const { return mlp(t) + k.modulation * rows + k.extra_per_token * t + k.extra_fixed; }

  // Self-attention over t tokens in sequences of s tokens: qkv + proj, then 2·s·C per token.
  double attention(double t, double s) const { return 4 * C2() * t + 2 * t * s * k.hidden + tail(t); }
  // Poolingformer: V and proj counted on every token, as the reference computes them.
  double pooling(double t) const { return 2 * C2() * t + tail(t); }
  // Sparse-gen: q + proj on the m sparse tokens, K/V on the n dense ones, each query over s_kv keys.
  double gen(double m, double n, double s_kv) const {
    return 2 * C2() * m + 2 * C2() * n + 2 * m * s_kv * k.hidden + tail(m);
  }
  // Recovery: q, proj and W2 on the n dense tokens plus W1 on the m sparse ones (before upsampling:
  // the 2C²m term with K/V), each dense query over s_kv sparse keys.
  double recovery(double m, double n, double s_kv) const {
    return 4 * C2() * n + 2 * C2() * m + 2 * n * s_kv * k.hidden + tail(n);
  }
};

double seq(const BlockCosts& k, const BlockSlot& slot, const Grid& g) {
  return k.sequence ? k.sequence(slot, g) : static_cast<double>(g.per_frame());
}

}  // namespace

std::vector<FlopsSegment> trunk_flops(const BlockCosts& k, int64_t depth, const SparseLayout* layout,
                                      const Grid& dense, const Grid& sparse) {
  if (dense.empty()) fail("flops: empty token grid");
  const Grid s = layout ? sparse : dense;
  if (layout && (s.empty() || s.frames < 1 || s.frames > dense.frames || s.h > dense.h || s.w > dense.w))
    fail("flops: sparse grid ", s.str(), " is outside the dense token grid ", dense.str());
  Terms t{k};
  const double N = static_cast<double>(dense.tokens()), M = static_cast<double>(s.tokens());
  // Gen and recovery attend frame by frame while the frames are kept, across the sample otherwise.
  const bool per_frame = s.frames == dense.frames;
  const double n_keys = per_frame ? static_cast<double>(dense.per_frame()) : N;
  const double m_keys = per_frame ? static_cast<double>(s.per_frame()) : M;

  std::vector<FlopsSegment> segs;
  auto add = [&](const std::string& name, double macs) {
    if (segs.empty() || segs.back().name != name) segs.push_back({name, 0.0, 0});
    segs.back().macs += macs;
    segs.back().blocks += 1;
  };
  const int64_t first_top = layout ? depth - layout->top : depth;
  for (const auto& slot : block_order(depth, layout)) {
    const bool out_sparse = slot.mixer == TokenMixer::SparseGen || slot.on_sparse_tokens;
    t.rows = k.modulation_rows ? k.modulation_rows(slot, out_sparse ? s : dense) : 1.0;
    switch (slot.mixer) {
      case TokenMixer::Pooling: add("poolingformers", t.pooling(N)); break;
      case TokenMixer::SparseGen: add("sdtm sparse-gen", t.gen(M, N, n_keys)); break;
      case TokenMixer::Recovery: add("sdtm recovery", t.recovery(M, N, m_keys)); break;
      case TokenMixer::Attention: {
        const Grid& g = slot.on_sparse_tokens ? s : dense;
        const double tokens = static_cast<double>(g.tokens());
        const std::string name = !layout ? "blocks" : slot.on_sparse_tokens ? "sdtm sparse"
                                 : slot.index >= first_top                 ? "top"
                                                                           : "sdtm dense";
        add(name, t.attention(tokens, seq(k, slot, g)));
        break;
      }
    }
  }
  // The SDTM segments interleave in forward order; merge each kind into one row.
  std::vector<FlopsSegment> merged;
  for (auto& sgm : segs) {
    auto it = std::find_if(merged.begin(), merged.end(), [&](const FlopsSegment& m) { return m.name == sgm.name; });
    if (it == merged.end()) {
      merged.push_back(sgm);
    } else {
      it->macs += sgm.macs;
      it->blocks += sgm.blocks;
    }
  }
  return merged;
}

FlopsReport make_report(FlopsSegment embedders, std::vector<FlopsSegment> trunk, FlopsSegment head) {
  FlopsReport r;
  r.segments.push_back(std::move(embedders));
  for (auto& s : trunk) r.segments.push_back(std::move(s));
  r.segments.push_back(std::move(head));
  for (const auto& s : r.segments) r.total_macs += s.macs;
  return r;
}

}  // namespace sdit

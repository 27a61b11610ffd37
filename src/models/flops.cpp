#include "models/flops.h"

#include <cmath>
#include <map>

#include "util/error.h"

namespace sdit {
namespace {

// The SPEC §6 terms, written with the MLP width explicit so that mlp_ratio 4 gives the spec's
// 12C²N for a dense block (4C² for qkv + proj, 8C² for the MLP).
struct Dims {
  double C, Hm, N, p2;
};

Dims dims_of(const DiTConfig& cfg) {
  if (cfg.patch_size < 1 || cfg.input_size < cfg.patch_size || cfg.input_size % cfg.patch_size != 0)
    fail("flops: input size ", cfg.input_size, " is not a positive multiple of patch size ", cfg.patch_size);
  if (cfg.hidden_size < 1 || cfg.depth < 1) fail("flops: hidden size and depth must be positive");
  const double C = static_cast<double>(cfg.hidden_size);
  // DiT builds the MLP with int(hidden_size * mlp_ratio) units.
  const double Hm = std::floor(C * cfg.mlp_ratio);
  const double p = static_cast<double>(cfg.patch_size);
  return {C, Hm, static_cast<double>(cfg.tokens()), p * p};
}

double adaln(const Dims& d) { return 6 * d.C * d.C; }
double mlp(const Dims& d, double tokens) { return 2 * d.C * d.Hm * tokens; }

double dense_block(const Dims& d, double n) {
  return 4 * d.C * d.C * n + mlp(d, n) + 2 * n * n * d.C + adaln(d);
}
double poolingformer_block(const Dims& d) {
  return 2 * d.C * d.C * d.N + mlp(d, d.N) + adaln(d);
}
double sparse_gen_block(const Dims& d, double m) {
  return 2 * d.C * d.C * m + mlp(d, m) + 2 * d.C * d.C * d.N + 2 * m * d.N * d.C + adaln(d);
}
double recovery_block(const Dims& d, double m) {
  return 4 * d.C * d.C * d.N + mlp(d, d.N) + 2 * d.C * d.C * m + 2 * d.N * m * d.C + adaln(d);
}

FlopsSegment embedders(const DiTConfig& cfg, const Dims& d) {
  const double patch = static_cast<double>(cfg.in_channels) * d.p2 * d.C * d.N;
  const double t_mlp = 256 * d.C + d.C * d.C;  // 256 sinusoidal frequencies -> C -> C
  return {"embedders", patch + t_mlp, 0};
}

FlopsSegment final_layer(const DiTConfig& cfg, const Dims& d) {
  const double linear = d.p2 * static_cast<double>(cfg.out_channels()) * d.C * d.N;
  return {"final", linear + 2 * d.C * d.C, 0};
}

FlopsReport finish(std::vector<FlopsSegment> segs) {
  FlopsReport r;
  for (auto& s : segs) {
    if (s.blocks == 0 && s.name != "embedders" && s.name != "final") continue;
    r.total_macs += s.macs;
    r.segments.push_back(std::move(s));
  }
  return r;
}

}  // namespace

FlopsReport dense_flops(const DiTConfig& cfg) {
  const Dims d = dims_of(cfg);
  const double depth = static_cast<double>(cfg.depth);
  return finish({embedders(cfg, d), {"blocks", depth * dense_block(d, d.N), cfg.depth}, final_layer(cfg, d)});
}

FlopsReport sparse_flops(const DiTConfig& cfg, const SparseLayout& layout, int64_t side) {
  const Dims d = dims_of(cfg);
  if (layout.depth() != cfg.depth)
    fail("flops: the SparseDiT layout has ", layout.depth(), " blocks but the model has depth ", cfg.depth);
  if (side < 1 || side > cfg.grid())
    fail("flops: sparse grid side ", side, " is outside [1, ", cfg.grid(), "]");
  const double m = static_cast<double>(side * side);
  const int64_t S = layout.sdtms;
  auto seg = [](std::string name, int64_t blocks, double per_block) {
    return FlopsSegment{std::move(name), static_cast<double>(blocks) * per_block, blocks};
  };
  return finish({embedders(cfg, d),
                 seg("poolingformers", layout.poolingformers, poolingformer_block(d)),
                 seg("sdtm sparse-gen", S * layout.gen, sparse_gen_block(d, m)),
                 seg("sdtm sparse", S * layout.sparse, dense_block(d, m)),
                 seg("sdtm recovery", S * layout.recovery, recovery_block(d, m)),
                 seg("sdtm dense", S * layout.dense, dense_block(d, d.N)),
                 seg("top", layout.top, dense_block(d, d.N)),
                 final_layer(cfg, d)});
}

double mean_gmacs(const DiTConfig& cfg, const SparseLayout* layout, const DensitySchedule& sched,
                  const std::vector<int64_t>& original_timesteps) {
  if (original_timesteps.empty()) fail("flops: no sampling timesteps to average over");
  if (sched.dense_grid() != cfg.grid())
    fail("flops: density schedule was built for a ", sched.dense_grid(), "x", sched.dense_grid(),
         " grid but the model's token grid is ", cfg.grid(), "x", cfg.grid());
  if (layout == nullptr) {
    if (!sched.is_full()) fail("flops: density '", sched.spec(), "' needs a SparseDiT; a dense DiT is always full");
    for (const int64_t t : original_timesteps) sched.side_at(t);  // range-check the timesteps all the same
    return dense_flops(cfg).total_macs / 1e9;
  }
  std::map<int64_t, double> by_side;
  double sum = 0.0;
  for (const int64_t t : original_timesteps) {
    const int64_t s = sched.side_at(t);
    auto it = by_side.find(s);
    if (it == by_side.end()) it = by_side.emplace(s, sparse_flops(cfg, *layout, s).total_macs).first;
    sum += it->second;
  }
  return sum / static_cast<double>(original_timesteps.size()) / 1e9;
}

}  // namespace sdit

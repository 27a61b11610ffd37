#pragma once
// `sparsedit sample` across ranks (docs/distributed.md §8.3). Two seed layouts:
//
// per-image: image j starts from KeyedDraws(seed, 0).randn(Latent, {j}) and gets the keyed sampler noise
//   of its own index (diffusion/pipeline.h, SamplingRequest::keyed), so the image set does not depend on
//   the number of ranks or the batch size. Global batch g covers images [g·G, (g+1)·G); rank r samples
//   its shard_range of it; the latents are gathered in rank order, i.e. image order. With a resume
//   folder, rank 0 stores every finished global batch there (atomically) and a restarted run skips them.
// dit: DiT's sample_ddp.py layout: rank r seeds its generator with seed·W + r and, per iteration of n
//   images, draws z, then the labels y = randint(0, classes), then the sampler's noise; the global
//   batch G = n·W is interleaved (image index i·W + r of each batch) and the total is rounded up to a
//   multiple of G, of which the first N are kept. The set depends on W and n, as in DiT.
#include <functional>
#include <string>

#include "diffusion/pipeline.h"
#include "dist/world.h"

namespace sdit::dist {

enum class SeedMode { PerImage, Dit };
SeedMode parse_seed_mode(const std::string& name);  // "per-image" | "dit"

struct ShardedSampling {
  SeedMode mode = SeedMode::PerImage;
  // per-image: where finished global batches are kept until the run completes ("" = nowhere), and a
  // description of the request: a folder written for another request is refused, not mixed in.
  std::string resume_dir, fingerprint;
  std::function<void(const std::string&)> on_message;  // rank 0's notes (batches resumed)
};

// Every rank calls it with the same request (req.samples() images; req.batch_size: the global batch
// for per-image, the per-rank batch n for dit, default 32 as sample_ddp.py). Returns, on every rank,
// all N samples in image order, with their conditioning in cond for the dit layout.
SamplingResult sample_sharded(Model& model, const SamplingRequest& req, const World& world,
                              const ShardedSampling& opt, const SamplingProgress& progress = {});

}  // namespace sdit::dist

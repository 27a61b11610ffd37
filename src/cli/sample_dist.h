#pragma once
// `sparsedit sample` across ranks (--nproc, torchrun, srun): the seed modes and the resumable
// sharded run of dist/sharded_sampling.h, and the one-line progress bars every run shows.
#include <cstdint>
#include <string>

#include "cli/common.h"
#include "diffusion/pipeline.h"
#include "dist/world.h"
#include "models/model.h"

namespace sdit::cli {

// What the sharded run needs from the command line.
struct RankedSampling {
  std::string seed_mode = "auto";  // auto | reference | per-image | dit
  std::string ckpt;                // part of the request's fingerprint
  std::string first_output;        // the resume folder is <first_output>.partial
  bool labels_given = false;       // --class-labels on the command line
  int64_t num_samples = 0;         // --num-samples
  bool quiet = false;
};

// reference: sample.py's single stream (one process); per-image or dit across ranks. auto: reference
// for one process, per-image for several.
std::string resolve_seed_mode(const std::string& asked, const dist::World& world);

// A one-line progress bar per sampling run; each bar starts its clock when the previous run ends, so
// s/it covers the first step too. runs <= 0: runs of unknown count (sharded sampling).
SamplingProgress progress_bars(int64_t runs, bool quiet);

// Samples `req` in `mode` (per-image or dit) across the world's ranks; rank 0 gets every sample in
// image order. A per-image run keeps finished global batches in `resume_dir` (set here; empty when
// the run is a single batch) and resumes them at any rank count. With dit, req.cond becomes the drawn
// labels; class labels drawn after the noise (Latte's `random`) become one keyed draw per image.
SamplingResult sample_across_ranks(const RankedSampling& a, Model& model, SamplingRequest& req, const dist::World& world,
                                   const std::string& mode, const Log& log, std::string& resume_dir);

}  // namespace sdit::cli

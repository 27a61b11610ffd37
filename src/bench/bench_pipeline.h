#pragma once
// One text-to-image sample end to end, timed stage by stage as `sparsedit sample -p` runs it: the T5
// encoder (built, one encode of a prompt and the empty negative prompt at the model's caption length,
// then freed), the transformer (built, then the sampling steps with classifier-free guidance, dense
// or SparseDiT), the VAE (built, one decode). Random weights of the published shapes (T5 v1.1 XXL,
// e.g. PixArt-XL/2, SD's VAE), so nothing is downloaded; one row per density, the encoder run once.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/registry.h"

namespace sdit {

struct PipelineBenchOptions {
  ModelSpec spec;                      // a text-conditioned preset at its size (layout set per density)
  std::vector<std::string> densities = {"full", "range:0.61,0.86"};
  std::string text_encoder = "t5-v1_1-xxl";
  torch::Dtype t5_dtype = torch::kBFloat16;
  int64_t t5_layers = 0;               // > 0: fewer encoder layers (tests)
  std::vector<int64_t> vae_channels;   // empty: SD's VAE (128, 256, 512, 512)
  std::string sampler = "dpm-solver", steps = "20";
  double cfg_scale = 4.5;
  uint64_t seed = 0;
};

struct PipelineStage {
  std::string name;          // "T5 weights", "T5 encode", "transformer weights", "sampling", "VAE weights", "VAE decode"
  double seconds = 0.0;
  int64_t peak_rss_bytes = -1;  // VmHWM since the stage began, what was resident then included
};

struct PipelineBenchRow {
  std::string model, density, schedule;
  int64_t image_h = 0, image_w = 0, steps = 0;
  std::vector<PipelineStage> stages;
  double total_seconds = 0.0;     // every stage of this row (the T5 stages are shared by all rows)
  double compute_seconds = 0.0;   // T5 encode + sampling + VAE decode (weights construction excluded)
};

std::vector<PipelineBenchRow> run_pipeline_bench(const PipelineBenchOptions& o,
                                                 const std::function<void(const std::string&)>& log = {});
std::string pipeline_bench_markdown(const std::vector<PipelineBenchRow>& rows);
nlohmann::ordered_json pipeline_bench_json(const std::vector<PipelineBenchRow>& rows);

}  // namespace sdit

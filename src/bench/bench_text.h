#pragma once
// Wall-clock and memory cost of the T5 text encoder as PixArt-α runs it: one encode = one forward
// of a batch of prompt + negative prompt at 120 tokens. Random weights (filled cheaply in the
// target dtype, so the 4.76 B-parameter XXL needs no download) or a real checkpoint folder.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/t5.h"

namespace sdit {

struct TextBenchOptions {
  std::string model = "t5-v1_1-xxl";   // preset (random weights) ...
  std::string text_encoder;            // ... or a T5 folder with weights (then model is its name)
  std::vector<torch::Dtype> dtypes = {torch::kBFloat16, torch::kFloat32};
  int64_t batch = 2;                   // prompt + negative prompt
  int64_t max_length = 120;
  int64_t num_layers = 0;              // > 0: override the preset's depth (per-layer timing, tests)
  int threads = 0;                     // <= 0: libtorch's default
  int reps = 3, warmup = 1;
  uint64_t seed = 0;
  // A row is skipped (not attempted) when its weights would not fit in MemAvailable with this margin.
  double memory_margin_bytes = 1.5e9;
};

struct TextBenchRow {
  std::string model, dtype;
  int64_t layers = 0, params = 0, batch = 0, tokens = 0;
  int threads = 0, reps = 0;
  double weight_bytes = 0.0;   // params × element size
  double setup_s = 0.0;        // allocating + filling (or loading) the weights
  double s_per_encode = 0.0, s_per_encode_sd = 0.0;
  int64_t peak_rss_bytes = -1; // VmHWM from just before the weights were allocated; weights included
  bool skipped = false;
  std::string note;            // why a row was skipped
};

using TextBenchLog = std::function<void(const std::string&)>;

// google/t5-v1_1-{small,base,large,xl,xxl} encoder shapes; throws on other names.
T5Config t5_preset(const std::string& name);

// One row per dtype, in order; the model of a row is freed before the next one is built.
std::vector<TextBenchRow> run_text_encoder_bench(const TextBenchOptions& options, const TextBenchLog& log = {});

nlohmann::ordered_json text_bench_json(const std::vector<TextBenchRow>& rows);
std::string text_bench_markdown(const std::vector<TextBenchRow>& rows, const TextBenchOptions& options);
std::string text_bench_csv(const std::vector<TextBenchRow>& rows);

}  // namespace sdit

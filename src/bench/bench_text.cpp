#include "bench/bench_text.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "models/t5.h"
#include "models/t5_load.h"
#include "util/error.h"
#include "util/memory.h"

namespace sdit {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

// google/t5-v1_1-* encoder shapes (config.json of each; vocabulary 32128, 32 buckets, distance 128).
T5Config t5_preset(const std::string& name) {
  struct P {
    const char* name;
    int64_t d_model, num_heads, d_ff, num_layers;
  };
  const P presets[] = {{"t5-v1_1-small", 512, 6, 1024, 8},
                       {"t5-v1_1-base", 768, 12, 2048, 12},
                       {"t5-v1_1-large", 1024, 16, 2816, 24},
                       {"t5-v1_1-xl", 2048, 32, 5120, 24},
                       {"t5-v1_1-xxl", 4096, 64, 10240, 24}};
  for (const auto& p : presets)
    if (name == p.name) {
      T5Config c = T5Config::v1_1_xxl();
      c.d_model = p.d_model;
      c.num_heads = p.num_heads;
      c.d_ff = p.d_ff;
      c.num_layers = p.num_layers;
      return c;
    }
  fail("bench: unknown text encoder '", name, "': t5-v1_1-small, -base, -large, -xl or -xxl (or --ckpt a T5 folder)");
}

namespace {

const char* dtype_str(torch::Dtype d) {
  return d == torch::kBFloat16 ? "bf16" : d == torch::kFloat32 ? "fp32" : d == torch::kFloat16 ? "fp16" : "?";
}

// PixArt's CFG pair: a prompt of 40 tokens + EOS, and the empty negative prompt (EOS only), padded.
std::pair<torch::Tensor, torch::Tensor> bench_inputs(const TextBenchOptions& o, int64_t vocab) {
  auto gen = at::detail::createCPUGenerator(o.seed + 1);
  auto ids = torch::zeros({o.batch, o.max_length}, torch::kLong);
  auto mask = torch::zeros({o.batch, o.max_length}, torch::kLong);
  for (int64_t b = 0; b < o.batch; ++b) {
    const int64_t n = b % 2 == 0 ? std::min<int64_t>(40, o.max_length - 1) : 0;
    if (n > 0) ids[b].narrow(0, 0, n).random_(3, std::min<int64_t>(vocab, 32000), gen);
    ids[b][n] = 1;
    mask[b].narrow(0, 0, n + 1).fill_(1);
  }
  return {ids, mask};
}

TextBenchRow measure(const TextBenchOptions& o, const T5Config& config, torch::Dtype dtype, const TextBenchLog& log) {
  TextBenchRow r;
  r.model = o.text_encoder.empty() ? o.model : o.text_encoder;
  r.dtype = dtype_str(dtype);
  r.layers = config.num_layers;
  r.params = config.num_parameters();
  r.batch = o.batch;
  r.tokens = o.max_length;
  r.threads = torch::get_num_threads();
  r.reps = o.reps;
  r.weight_bytes = static_cast<double>(r.params) * static_cast<double>(c10::elementSize(dtype));
  const int64_t avail = system_available_bytes();
  if (avail > 0 && r.weight_bytes + o.memory_margin_bytes > static_cast<double>(avail)) {
    std::ostringstream os;
    os.precision(3);
    os << "does not fit: weights " << r.weight_bytes / 1e9 << " GB + margin " << o.memory_margin_bytes / 1e9
       << " GB > MemAvailable " << avail / 1e9 << " GB";
    r.skipped = true;
    r.note = os.str();
    if (log) log(r.model + " " + r.dtype + ": skipped, " + r.note);
    return r;
  }
  reset_process_peak_rss();
  auto t0 = Clock::now();
  T5EncoderModel model{nullptr};
  if (o.text_encoder.empty()) {
    model = T5EncoderModel(config, torch::TensorOptions().dtype(dtype));
    t5_fill_random(model, o.seed);
  } else {
    T5LoadOptions lo;
    lo.dtype = dtype;
    model = load_t5_encoder(o.text_encoder, lo);
  }
  r.setup_s = seconds_since(t0);
  if (log) log(r.model + " " + r.dtype + ": weights ready in " + std::to_string(r.setup_s) + " s");
  const auto [ids, mask] = bench_inputs(o, config.vocab_size);
  torch::NoGradGuard ng;
  for (int i = 0; i < o.warmup; ++i) model->forward(ids, mask);
  std::vector<double> times;
  for (int i = 0; i < o.reps; ++i) {
    t0 = Clock::now();
    auto h = model->forward(ids, mask);
    times.push_back(seconds_since(t0));
    if (!torch::isfinite(h).all().item<bool>()) fail("bench: the ", r.dtype, " encoder produced non-finite values");
    if (log) log(r.model + " " + r.dtype + ": encode " + std::to_string(i + 1) + "/" + std::to_string(o.reps) + " " +
                 std::to_string(times.back()) + " s");
  }
  double sum = 0.0, sq = 0.0;
  for (double t : times) sum += t;
  r.s_per_encode = times.empty() ? 0.0 : sum / times.size();
  for (double t : times) sq += (t - r.s_per_encode) * (t - r.s_per_encode);
  r.s_per_encode_sd = times.size() > 1 ? std::sqrt(sq / (times.size() - 1)) : 0.0;
  r.peak_rss_bytes = process_peak_rss_bytes();
  return r;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::vector<TextBenchRow> run_text_encoder_bench(const TextBenchOptions& o, const TextBenchLog& log) {
  if (o.batch < 1 || o.max_length < 1 || o.reps < 1 || o.warmup < 0)
    fail("bench: batch, max length and reps must be positive (warm-up non-negative)");
  if (o.threads > 0) torch::set_num_threads(o.threads);
  T5Config config = o.text_encoder.empty() ? t5_preset(o.model) : read_t5_config(o.text_encoder);
  if (o.num_layers > 0) {
    if (!o.text_encoder.empty()) fail("bench: --depth applies to a preset, not to a checkpoint");
    config.num_layers = o.num_layers;
  }
  std::vector<TextBenchRow> rows;
  for (const auto dtype : o.dtypes) rows.push_back(measure(o, config, dtype, log));
  return rows;
}

nlohmann::ordered_json text_bench_json(const std::vector<TextBenchRow>& rows) {
  auto arr = nlohmann::ordered_json::array();
  for (const auto& r : rows)
    arr.push_back({{"mode", "text-encoder"}, {"model", r.model}, {"dtype", r.dtype}, {"layers", r.layers},
                   {"params", r.params}, {"batch", r.batch}, {"tokens", r.tokens}, {"threads", r.threads},
                   {"reps", r.reps}, {"weight_bytes", r.weight_bytes}, {"setup_s", r.setup_s},
                   {"s_per_encode", r.s_per_encode}, {"s_per_encode_sd", r.s_per_encode_sd},
                   {"peak_rss_bytes", r.peak_rss_bytes}, {"skipped", r.skipped}, {"note", r.note}});
  return {{"rows", arr}};
}

std::string text_bench_markdown(const std::vector<TextBenchRow>& rows, const TextBenchOptions& o) {
  std::ostringstream os;
  os << "sparsedit bench (text encoder): one encode = one forward of " << o.batch << " prompt(s) (prompt + negative) × "
     << o.max_length << " tokens; " << o.warmup << " warm-up + " << o.reps
     << " timed; peak: process VmHWM from before the weights were built, weights included\n\n"
     << "| model | dtype | layers | params | threads | weights GB | setup s | s/encode | peak GiB |\n"
     << "|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    os << "| " << r.model << " | " << r.dtype << " | " << r.layers << " | " << fmt("%.3g", r.params / 1e9) << " B | "
       << r.threads << " | " << fmt("%.2f", r.weight_bytes / 1e9) << " | ";
    if (r.skipped) {
      os << "- | " << r.note << " | - |\n";
      continue;
    }
    os << fmt("%.1f", r.setup_s) << " | " << fmt("%.2f", r.s_per_encode) << " ± " << fmt("%.2f", r.s_per_encode_sd)
       << " | " << fmt("%.2f", r.peak_rss_bytes / (1024.0 * 1024.0 * 1024.0)) << " |\n";
  }
  return os.str();
}

std::string text_bench_csv(const std::vector<TextBenchRow>& rows) {
  std::ostringstream os;
  os << "mode,model,dtype,layers,params,batch,tokens,threads,reps,weight_bytes,setup_s,s_per_encode,s_per_encode_sd,"
        "peak_rss_bytes,skipped\n";
  for (const auto& r : rows)
    os << "text-encoder," << r.model << "," << r.dtype << "," << r.layers << "," << r.params << "," << r.batch << ","
       << r.tokens << "," << r.threads << "," << r.reps << "," << fmt("%.0f", r.weight_bytes) << ","
       << fmt("%.4g", r.setup_s) << "," << fmt("%.6g", r.s_per_encode) << "," << fmt("%.3g", r.s_per_encode_sd) << ","
       << r.peak_rss_bytes << "," << (r.skipped ? 1 : 0) << "\n";
  return os.str();
}

}  // namespace sdit

// `sparsedit bench` on tiny random models and checkpoints: the structure of the rows, the FLOPs
// column against the analytic counter, speed-ups against the `full` row, and clean failures.
// Timings themselves are never asserted beyond being positive (the machine is shared).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <vector>
#include <string>

#include "cli_runner.h"
#include "diffusion/density_schedule.h"
#include "diffusion/respace.h"
#include "bench/bench.h"
#include "bench/gemm_limit.h"
#include "diffusion/pipeline.h"
#include "models/dit.h"
#include "io/checkpoint.h"
#include "models/model.h"

namespace {

// 16×16 latent, patch 2: an 8×8 token grid; depth 6 gives the SparseDiT layout 1:1x1,1,1,1:1.
const std::string kTiny =
    "bench --model DiT-S/2 --random-weights --hidden-size 64 --depth 6 --num-heads 2 --latent-size 16 -q ";

sdit::DiTConfig tiny_config() {
  sdit::DiTConfig c;
  c.hidden_size = 64;
  c.depth = 6;
  c.num_heads = 2;
  c.patch_size = 2;
  c.input_size = 16;
  return c;
}

nlohmann::json run_json(const std::string& args) {
  const auto r = run_cli(args + " --json");
  EXPECT_EQ(r.status, 0) << r.output;
  try {
    return nlohmann::json::parse(r.output);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << e.what() << "\n" << r.output;
    return nlohmann::json::object();
  }
}

double expected_gmacs(const sdit::DiTConfig& cfg, bool sparse, const std::string& density, const std::string& steps) {
  const auto sched = sdit::DensitySchedule::parse(density, cfg.grid());
  const auto ts = sdit::space_timesteps(1000, steps);
  std::optional<sdit::SparseLayout> layout;
  if (sparse) layout = sdit::SparseLayout::default_for_depth(cfg.depth);
  return sdit::mean_gmacs(sdit::Model::build(sdit::ModelSpec{"DiT", cfg.to_json(), layout}), sched, ts);
}

void expect_error(const std::string& args, const std::string& needle) {
  const auto r = run_cli(args);
  EXPECT_NE(r.status, 0) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\nexpected '" << needle << "' in:\n" << r.output;
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
}

TEST(Bench, JsonRowsCoverEveryCombination) {
  const auto j = run_json(kTiny +
                          "--density full --density range:0.61,0.86 --batch-size 1,2 --threads 1,2 --reps 2 "
                          "--num-sampling-steps 50");
  ASSERT_TRUE(j.contains("rows"));
  const auto& rows = j["rows"];
  ASSERT_EQ(rows.size(), 8u);  // 1 size × 2 densities × 2 batches × 2 thread counts
  const auto cfg = tiny_config();
  for (const auto& r : rows) {
    for (const char* k : {"model", "family", "image_size", "density", "batch", "threads", "device", "dtype", "cfg",
                          "sides", "ms_per_step", "ms_per_step_sd", "ms_per_step_reps", "gmacs",
                          "gmacs_per_image_step", "gflops_per_s", "gflops_per_s_sd", "img_per_s", "img_per_s_sd",
                          "peak_mem_bytes", "mem_source", "speedup", "gmacs_ratio", "steps", "reps"})
      EXPECT_TRUE(r.contains(k)) << "missing " << k << " in " << r.dump();
    const bool full = r["density"] == "full";
    EXPECT_EQ(r["family"], full ? "DiT" : "SparseDiT");
    EXPECT_EQ(r["image_size"], 128);
    EXPECT_EQ(r["steps"], 50);
    EXPECT_EQ(r["ms_per_step_reps"].size(), 2u);
    EXPECT_GT(r["ms_per_step"].get<double>(), 0.0);
    EXPECT_GE(r["ms_per_step_sd"].get<double>(), 0.0);
    EXPECT_GT(r["img_per_s"].get<double>(), 0.0);
    EXPECT_GT(r["gflops_per_s"].get<double>(), 0.0);
    EXPECT_GT(r["gemm_limit_gflops"].get<double>(), 0.0);
    EXPECT_NEAR(r["pct_gemm_limit"].get<double>(),
                100.0 * r["gflops_per_s"].get<double>() / r["gemm_limit_gflops"].get<double>(), 1e-9);
    EXPECT_DOUBLE_EQ(r["gmacs"].get<double>(), expected_gmacs(cfg, !full, r["density"], "50"));
    EXPECT_DOUBLE_EQ(r["gmacs_per_image_step"].get<double>(), r["gmacs"].get<double>());
    // The per-side steps add up to the run and their weighted GMACs to the mean.
    int64_t steps = 0;
    double weighted = 0.0;
    for (const auto& s : r["sides"]) {
      steps += s["steps"].get<int64_t>();
      weighted += s["steps"].get<double>() * s["gmacs"].get<double>();
      EXPECT_GT(s["ms"].get<double>(), 0.0);
    }
    EXPECT_EQ(steps, 50);
    EXPECT_NEAR(weighted / 50.0, r["gmacs"].get<double>(), 1e-12);
    if (full) {
      EXPECT_EQ(r["sides"].size(), 1u);
      EXPECT_EQ(r["sides"][0]["side"], cfg.grid());
      EXPECT_DOUBLE_EQ(r["speedup"].get<double>(), 1.0);
      EXPECT_DOUBLE_EQ(r["gmacs_ratio"].get<double>(), 1.0);
    } else {
      EXPECT_GT(r["sides"].size(), 1u);  // range:0.61,0.86 visits several grid sides
      EXPECT_GT(r["speedup"].get<double>(), 0.0);
      EXPECT_GT(r["gmacs_ratio"].get<double>(), 0.0);
      EXPECT_LT(r["gmacs_ratio"].get<double>(), 1.0);
    }
  }
  // The rows come in the nesting order size, density, batch, threads.
  EXPECT_EQ(rows[0]["density"], "full");
  EXPECT_EQ(rows[0]["batch"], 1);
  EXPECT_EQ(rows[1]["threads"], 2);
  EXPECT_EQ(rows[2]["batch"], 2);
  EXPECT_EQ(rows[4]["density"], "range:0.61,0.86");
}

TEST(Bench, CfgDoublesTheCostPerImage) {
  const auto j = run_json(kTiny + "--density full --density fixed:4 --cfg --reps 1 --num-sampling-steps 10");
  ASSERT_EQ(j["rows"].size(), 2u);
  for (const auto& r : j["rows"]) {
    EXPECT_TRUE(r["cfg"].get<bool>());
    EXPECT_DOUBLE_EQ(r["gmacs_per_image_step"].get<double>(), 2.0 * r["gmacs"].get<double>());
  }
  EXPECT_DOUBLE_EQ(j["rows"][1]["gmacs"].get<double>(),
                   sdit::sparse_flops(tiny_config(), sdit::SparseLayout::default_for_depth(6), 4).total_macs / 1e9);
}

TEST(Bench, MarkdownAndCsv) {
  const std::string args = kTiny + "--density full --density range:0.61,0.86 --reps 1 --num-sampling-steps 20";
  const auto md = run_cli(args);
  ASSERT_EQ(md.status, 0) << md.output;
  EXPECT_NE(md.output.find("| model | size |"), std::string::npos) << md.output;
  EXPECT_NE(md.output.find("CFG off"), std::string::npos) << md.output;
  EXPECT_NE(md.output.find("× wall"), std::string::npos) << md.output;  // the group summary line
  EXPECT_NE(md.output.find("FLOPs)"), std::string::npos) << md.output;

  const auto csv = run_cli(args + " --csv");
  ASSERT_EQ(csv.status, 0) << csv.output;
  size_t lines = 0;
  for (const char c : csv.output) lines += c == '\n';
  EXPECT_EQ(lines, 3u) << csv.output;  // header + 2 rows
  EXPECT_EQ(csv.output.rfind("mode,model,family,", 0), 0u) << csv.output;
  EXPECT_NE(csv.output.find("\"range:0.61,0.86\""), std::string::npos) << csv.output;  // quoted comma
  EXPECT_NE(csv.output.find("\"1:1x1,1,1,1:1\""), std::string::npos) << csv.output;   // the layout too
  // Every line has as many fields as the header (commas inside quotes do not count).
  std::vector<size_t> fields{1};
  bool quoted = false;
  for (const char c : csv.output) {
    if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) ++fields.back();
    else if (c == '\n') fields.push_back(1);
  }
  fields.pop_back();  // after the final newline
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[1], fields[0]);
  EXPECT_EQ(fields[2], fields[0]);
}

TEST(Bench, CheckpointsFixTheFamily) {
  torch::manual_seed(0);
  sdit::ModelSpec spec{"DiT", tiny_config().to_json(), std::nullopt};
  // .pt rather than .safetensors: load_checkpoint takes a safetensors file whose 8-byte header length
  // starts with byte 0x80 for a legacy pickle, and these tiny headers can hit that.
  const std::string dense_path = temp_path("bench_dense.pt");
  sdit::save_checkpoint(dense_path, sdit::Model::build(spec).state_dict());
  spec.layout = sdit::SparseLayout::default_for_depth(6);
  const std::string sparse_path = temp_path("bench_sparse.pt");
  sdit::save_checkpoint(sparse_path, sdit::Model::build(spec).state_dict());

  // A SparseDiT checkpoint runs `full` itself, at the dense side.
  const auto j = run_json("bench -q --num-heads 2 --ckpt " + sparse_path + " --density full --density fixed:2 --reps 1 --num-sampling-steps 10");
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][0]["family"], "SparseDiT");
  EXPECT_EQ(j["rows"][0]["sides"][0]["side"], 8);
  EXPECT_EQ(j["rows"][0]["image_size"], 128);
  EXPECT_DOUBLE_EQ(j["rows"][0]["gmacs"].get<double>(),
                   sdit::sparse_flops(tiny_config(), *spec.layout, 8).total_macs / 1e9);
  EXPECT_DOUBLE_EQ(j["rows"][0]["speedup"].get<double>(), 1.0);
  EXPECT_EQ(j["rows"][1]["sides"][0]["side"], 2);

  const auto d = run_json("bench -q --num-heads 2 --ckpt " + dense_path + " --image-size 128 --reps 1 --num-sampling-steps 5 --density full");
  ASSERT_EQ(d["rows"].size(), 1u);
  EXPECT_EQ(d["rows"][0]["family"], "DiT");

  expect_error("bench -q --num-heads 2 --ckpt " + dense_path + " --density range:0.61,0.86 --reps 1", "dense DiT");
  expect_error("bench -q --num-heads 2 --ckpt " + dense_path + " --image-size 256 --reps 1", "checkpoint has a 16x16 latent");
  expect_error("bench -q --num-heads 2 --ckpt " + dense_path + " --hidden-size 32", "a checkpoint has its own");
}

TEST(Bench, BadFlagsFailClearly) {
  expect_error(kTiny + "--density range:0.9", "--density 'range:0.9'");
  expect_error(kTiny + "--density bogus", "--density 'bogus'");
  expect_error(kTiny + "--density full --batch-size 0", "--batch-size must be positive");
  expect_error(kTiny + "--threads 0", "--threads must be between");
  expect_error(kTiny + "--reps 0", "--reps must be at least 1");
  expect_error(kTiny + "--batch-size 1,x", "invalid --batch-size 'x'");
  expect_error(kTiny + "--json --csv", "at most one of --json, --csv, --md");
  expect_error(kTiny + "--dtype fp8", "invalid dtype 'fp8'");
  expect_error(kTiny + "--device tpu", "invalid device");
  expect_error(kTiny + "--num-sampling-steps 0", "");
  expect_error("bench --model DiT-XL/2 --image-size 256", "--random-weights");
  expect_error("bench --model DiT-XL/2 --random-weights", "--image-size");
  expect_error("bench --model DiT-XL/2 --random-weights --image-size 100", "not a positive multiple of 8");
  expect_error("bench --model DiT-Q/2 --random-weights --image-size 256", "unknown model");
  expect_error("bench --random-weights --image-size 256", "exactly one of --model");
  expect_error("bench --model DiT-S/2 --random-weights --latent-size 15", "not a multiple of patch size");
  expect_error(kTiny + "--layout 1:1x1,1,1,1:2", "");  // 7 blocks for a depth-6 model
  expect_error(kTiny + "--no-such-flag", "no-such-flag");
  expect_error("bench --ckpt /nonexistent/file.safetensors", "nonexistent");
}

TEST(Bench, TrainStepsDenseAgainstMultiDensity) {
  const auto j = run_json(kTiny + "--train --batch-size 8 --density full --density range:0.61,0.86 --reps 1");
  ASSERT_EQ(j["rows"].size(), 2u);
  const auto& full = j["rows"][0];
  const auto& sparse = j["rows"][1];
  EXPECT_EQ(full["mode"], "train");
  EXPECT_EQ(full["family"], "DiT");
  EXPECT_EQ(sparse["family"], "SparseDiT");
  EXPECT_DOUBLE_EQ(full["speedup"].get<double>(), 1.0);
  EXPECT_GT(sparse["speedup"].get<double>(), 0.0);
  EXPECT_GT(sparse["steps_per_s"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(full["gmacs"].get<double>(), sdit::dense_flops(tiny_config()).total_macs / 1e9);
  // One micro-batch per stage of the schedule; their samples make up the global batch, and the
  // row's GMACs is the batch-weighted mean of theirs.
  ASSERT_EQ(sparse["sides"].size(), 4u);
  const auto sched = sdit::DensitySchedule::parse("range:0.61,0.86", 8);
  const auto layout = sdit::SparseLayout::default_for_depth(6);
  int64_t samples = 0;
  double macs = 0.0;
  for (size_t k = 0; k < 4; ++k) {
    const auto& e = sparse["sides"][k];
    EXPECT_EQ(e["side"], sched.stage_sides()[k]);
    EXPECT_DOUBLE_EQ(e["gmacs"].get<double>(),
                     sdit::sparse_flops(tiny_config(), layout, sched.stage_sides()[k]).total_macs / 1e9);
    samples += e["samples"].get<int64_t>();
    macs += e["samples"].get<double>() * e["gmacs"].get<double>();
  }
  EXPECT_EQ(samples, 8);
  EXPECT_NEAR(sparse["gmacs"].get<double>(), macs / 8.0, 1e-12);

  expect_error(kTiny + "--train --batch-size 2 --density range:0.61,0.86", "smaller than the number of density intervals");
  expect_error(kTiny + "--train --cfg", "--cfg applies to sampling");
}

TEST(Bench, AttachSpeedupsPerGroup) {
  std::vector<sdit::BenchRow> rows(3);
  for (auto& r : rows) {
    r.model = "m";
    r.image_size = 256;
    r.batch = 1;
    r.threads = 2;
  }
  rows[0].density = "range:0.61,0.86";
  rows[0].ms_per_step.mean = 50.0;
  rows[0].gmacs = 60.0;
  rows[1].density = "full";
  rows[1].ms_per_step.mean = 100.0;
  rows[1].gmacs = 120.0;
  rows[2].density = "fixed:4";
  rows[2].threads = 1;  // another group, without a full row
  rows[2].ms_per_step.mean = 10.0;
  sdit::attach_speedups(rows);
  ASSERT_TRUE(rows[0].speedup && rows[1].speedup);
  EXPECT_DOUBLE_EQ(*rows[0].speedup, 2.0);
  EXPECT_DOUBLE_EQ(*rows[0].gmacs_ratio, 0.5);
  EXPECT_DOUBLE_EQ(*rows[1].speedup, 1.0);
  EXPECT_FALSE(rows[2].speedup.has_value());

  const auto m = sdit::mean_sd({1.0, 2.0, 3.0});
  EXPECT_DOUBLE_EQ(m.mean, 2.0);
  EXPECT_DOUBLE_EQ(m.sd, 1.0);
  EXPECT_DOUBLE_EQ(sdit::mean_sd({5.0}).sd, 0.0);
}

}  // namespace

namespace {

// The GEMM limit times the products a forward issues: each mm/addmm/bmm/baddbmm is recorded with
// its (batch, m, k, n), nothing else is, and the rate comes out positive.
TEST(Bench, GemmLimitRecordsTheForwardsProducts) {
  torch::NoGradGuard ng;
  const auto x = torch::randn({10, 3});
  const auto w = torch::randn({4, 3});
  const auto b = torch::randn({4});
  const auto q = torch::randn({2, 5, 6});
  const auto k = torch::randn({2, 6, 7});
  const auto shapes = sdit::record_gemm_shapes([&] {
    torch::addmm(b, x, w.t());
    torch::addmm(b, x, w.t());
    torch::bmm(q, k);
    torch::baddbmm(torch::zeros({2, 5, 7}), q, k);
    torch::gelu(x);  // not a product
  });
  ASSERT_EQ(shapes.count.size(), 2u);
  EXPECT_DOUBLE_EQ(shapes.count.at(sdit::GemmShape{1, 10, 3, 4}), 2.0);
  EXPECT_DOUBLE_EQ(shapes.count.at(sdit::GemmShape{2, 5, 6, 7}), 2.0);
  EXPECT_DOUBLE_EQ(shapes.flops(), 2.0 * (2 * 10 * 3 * 4) + 2.0 * (2 * 2 * 5 * 6 * 7));
  // Nothing is recorded outside the call.
  torch::mm(x, w.t());
  EXPECT_GT(sdit::measure_gemm_rate(shapes, torch::kFloat32, torch::kCPU, 1, 1.0), 0.0);
}

}  // namespace

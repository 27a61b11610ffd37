// Analytic MAC counts against the numbers of docs/method.md §6 and DiT's Table 4 print, and the `flops` command.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "diffusion/density_schedule.h"
#include "models/flops.h"
#include "io/checkpoint.h"
#include "diffusion/pipeline.h"
#include "models/dit.h"
#include "models/load.h"
#include "models/model.h"
#include "testing.h"
#include "util/error.h"

using sdit::DensitySchedule;
using sdit::DiTConfig;
using sdit::SparseLayout;

namespace {

DiTConfig make(int64_t hidden, int64_t depth, int64_t patch, int64_t input_size) {
  DiTConfig c;
  c.hidden_size = hidden;
  c.depth = depth;
  c.patch_size = patch;
  c.input_size = input_size;
  return c;
}
DiTConfig xl2(int64_t input_size) { return make(1152, 28, 2, input_size); }

double g(const sdit::FlopsReport& r) { return r.total_macs / 1e9; }

// Printed values carry 2 or 4 significant digits: agree to half a unit of the last one.
void expect_printed(double got, double printed, double unit, const std::string& what) {
  EXPECT_LE(std::abs(got - printed), 0.5 * unit + 1e-12) << what << ": got " << got << ", printed " << printed;
}

std::string run(const std::string& args, int* status) {
  const std::string cmd = sparsedit_binary() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

nlohmann::json parse_json(const std::string& out) {
  try {
    return nlohmann::json::parse(out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "):\n" << out;
    return nlohmann::json::object();
  }
}

}  // namespace

TEST(Flops, DenseDiTMatchesSpec) {
  expect_printed(g(sdit::dense_flops(xl2(32))), 118.6, 0.1, "XL/2 256");
  expect_printed(g(sdit::dense_flops(xl2(64))), 524.5, 0.1, "XL/2 512");
  expect_printed(g(sdit::dense_flops(make(768, 12, 2, 32))), 23.0, 0.1, "B/2 256");
}

TEST(Flops, DenseDiTMatchesPaperTable4) {
  struct Row {
    int64_t hidden, depth;
    std::map<int64_t, double> by_patch;
  };
  const std::vector<Row> rows = {{384, 12, {{8, 0.36}, {4, 1.41}, {2, 6.06}}},
                                 {768, 12, {{8, 1.42}, {4, 5.56}, {2, 23.01}}},
                                 {1024, 24, {{8, 5.01}, {4, 19.70}, {2, 80.71}}},
                                 {1152, 28, {{8, 7.39}, {4, 29.05}, {2, 118.64}}}};
  for (const auto& r : rows)
    for (const auto& [p, paper] : r.by_patch) {
      const double got = g(sdit::dense_flops(make(r.hidden, r.depth, p, 32)));
      // Table 4 also counts norms and softmax; the spec's count stays within 0.5% or the rounding.
      EXPECT_LE(std::abs(got - paper), std::max(0.005 * paper, 0.005))
          << "C=" << r.hidden << " depth " << r.depth << " /" << p << ": " << got << " vs " << paper;
    }
}

TEST(Flops, SparseFixedGridsMatchSpec) {
  const SparseLayout xl;  // 2:4x1,3,1,1:2
  ASSERT_EQ(xl.depth(), 28);
  expect_printed(g(sdit::sparse_flops(xl2(32), xl, 6)), 60.81, 0.01, "256 6x6");
  expect_printed(g(sdit::sparse_flops(xl2(32), xl, 8)), 68.15, 0.01, "256 8x8");
  expect_printed(g(sdit::sparse_flops(xl2(32), xl, 10)), 77.66, 0.01, "256 10x10");
  expect_printed(g(sdit::sparse_flops(xl2(64), xl, 8)), 233.5, 0.1, "512 8x8");
  expect_printed(g(sdit::sparse_flops(xl2(64), xl, 16)), 287.8, 0.1, "512 16x16");
  expect_printed(g(sdit::sparse_flops(xl2(64), xl, 20)), 329.8, 0.1, "512 20x20");
}

TEST(Flops, SegmentsAddUpAndShareEmbeddersWithDense) {
  const SparseLayout xl;
  const auto cfg = xl2(32);
  const auto dense = sdit::dense_flops(cfg);
  const auto sparse = sdit::sparse_flops(cfg, xl, 8);
  for (const auto* r : {&dense, &sparse}) {
    double sum = 0.0;
    int64_t blocks = 0;
    for (const auto& s : r->segments) {
      EXPECT_GT(s.macs, 0.0) << s.name;
      sum += s.macs;
      blocks += s.blocks;
    }
    EXPECT_DOUBLE_EQ(sum, r->total_macs);
    EXPECT_EQ(blocks, 28);
  }
  ASSERT_EQ(dense.segments.size(), 3u);
  ASSERT_EQ(sparse.segments.size(), 8u);
  EXPECT_EQ(sparse.segments.front().name, "embedders");
  EXPECT_EQ(sparse.segments.back().name, "final");
  EXPECT_DOUBLE_EQ(sparse.segments.front().macs, dense.segments.front().macs);
  EXPECT_DOUBLE_EQ(sparse.segments.back().macs, dense.segments.back().macs);
  // Top and SDTM dense blocks are ordinary DiT blocks: per block they cost what a dense block does.
  const double per_dense_block = dense.segments[1].macs / 28.0;
  for (const auto& s : sparse.segments)
    if (s.name == "top" || s.name == "sdtm dense") EXPECT_NEAR(s.macs / s.blocks, per_dense_block, 1.0) << s.name;
}

TEST(Flops, SparseCostGrowsWithSideAndEmptySegmentsVanish) {
  const SparseLayout xl;
  double prev = 0.0;
  for (int64_t s = 1; s <= 16; ++s) {
    const double now = sdit::sparse_flops(xl2(32), xl, s).total_macs;
    EXPECT_GT(now, prev) << "side " << s;
    prev = now;
  }
  SparseLayout no_pool = xl;
  no_pool.poolingformers = 0;
  no_pool.top = 4;
  const auto r = sdit::sparse_flops(xl2(32), no_pool, 8);
  for (const auto& s : r.segments) EXPECT_NE(s.name, "poolingformers");
}

TEST(Flops, RejectsMismatchedLayoutAndSide) {
  const SparseLayout xl;
  EXPECT_THROW(sdit::sparse_flops(make(768, 12, 2, 32), xl, 8), sdit::Error);
  EXPECT_THROW(sdit::sparse_flops(xl2(32), xl, 0), sdit::Error);
  EXPECT_THROW(sdit::sparse_flops(xl2(32), xl, 17), sdit::Error);
  EXPECT_THROW(sdit::dense_flops(make(1152, 28, 2, 31)), sdit::Error);
}

TEST(Flops, MeanOverStepsWeighsEachVisitedSide) {
  // A small model (the weighting does not depend on the size) with a 16x16 grid like XL at 256 px.
  const auto cfg = make(64, 6, 2, 32);
  const auto layout = SparseLayout::default_for_depth(cfg.depth);
  auto sparse = sdit::Model::build(sdit::ModelSpec{"DiT", cfg.to_json(), layout});
  auto dense = sdit::Model::build(sdit::ModelSpec{"DiT", cfg.to_json(), std::nullopt});
  std::vector<int64_t> ts;
  for (int64_t t = 0; t < 1000; t += 4) ts.push_back(t);  // 250 steps, 62 or 63 per stage

  const auto fixed = DensitySchedule::parse("fixed:8", cfg.grid());
  EXPECT_NEAR(sdit::mean_gmacs(sparse, fixed, ts), g(sdit::sparse_flops(cfg, layout, 8)), 1e-9);

  const auto range = DensitySchedule::parse("range:0.61,0.86", cfg.grid());
  double want = 0.0;
  for (auto t : ts) want += g(sdit::sparse_flops(cfg, layout, range.stage_sides()[t / 250]));
  want /= static_cast<double>(ts.size());
  EXPECT_NEAR(sdit::mean_gmacs(sparse, range, ts), want, 1e-9);
  EXPECT_LT(want, g(sdit::sparse_flops(cfg, layout, 10)));
  EXPECT_GT(want, g(sdit::sparse_flops(cfg, layout, 6)));

  const auto full = DensitySchedule::parse("full", cfg.grid());
  EXPECT_NEAR(sdit::mean_gmacs(dense, full, ts), g(sdit::dense_flops(cfg)), 1e-9);
  EXPECT_THROW(sdit::mean_gmacs(dense, range, ts), sdit::Error);
  EXPECT_THROW(sdit::mean_gmacs(sparse, range, {}), sdit::Error);
  EXPECT_THROW(sdit::mean_gmacs(sparse, range, {1000}), sdit::Error);
  EXPECT_THROW(sdit::mean_gmacs(sparse, DensitySchedule::parse("full", 8), ts), sdit::Error);
}

TEST(FlopsCommand, JsonForDenseAndFixedSparse) {
  ASSERT_TRUE(std::filesystem::exists(sparsedit_binary())) << "build the sparsedit target first";
  int st = -1;
  auto out = run("flops --model DiT-XL/2 --image-size 256 --json", &st);
  ASSERT_EQ(st, 0) << out;
  auto j = parse_json(out);
  EXPECT_NEAR(j.value("gmacs", 0.0), 118.6, 0.05) << out;
  EXPECT_EQ(j["sides"], nlohmann::json::array({16}));
  ASSERT_TRUE(j["segments"].is_array());
  EXPECT_EQ(j["segments"].size(), 3u);
  double sum = 0.0;
  for (const auto& seg : j["segments"]) sum += seg["gmacs_per_side"][0].get<double>();
  EXPECT_NEAR(sum, j.value("gmacs", 0.0), 1e-6);

  out = run("flops --model DiT-XL/2 --image-size 256 --sparse --density fixed:8 --json", &st);
  ASSERT_EQ(st, 0) << out;
  j = parse_json(out);
  EXPECT_NEAR(j.value("gmacs", 0.0), 68.15, 0.005) << out;
  EXPECT_EQ(j["sides"], nlohmann::json::array({8}));
  EXPECT_EQ(j.value("family", ""), "SparseDiT");

  out = run("flops --model DiT-XL/2 --image-size 512 --sparse --density fixed:16 --json", &st);
  ASSERT_EQ(st, 0) << out;
  EXPECT_NEAR(parse_json(out).value("gmacs", 0.0), 287.8, 0.05) << out;

  // A schedule: the mean weighs each side's cost by the steps spent on it.
  out = run("flops --model DiT-XL/2 --image-size 256 --sparse --density sides:10,8,8,6 --num-sampling-steps 100 --json", &st);
  ASSERT_EQ(st, 0) << out;
  j = parse_json(out);
  EXPECT_EQ(j["sides"], nlohmann::json::array({10, 8, 6}));
  double weighted = 0.0, steps = 0.0;
  for (size_t c = 0; c < j["sides"].size(); ++c) {
    weighted += j["gmacs_per_side"][c].get<double>() * j["steps_per_side"][c].get<double>();
    steps += j["steps_per_side"][c].get<double>();
  }
  EXPECT_EQ(steps, 100.0);
  EXPECT_NEAR(j.value("gmacs", 0.0), weighted / steps, 1e-9);
}

TEST(FlopsCommand, ScheduleTableAndErrors) {
  ASSERT_TRUE(std::filesystem::exists(sparsedit_binary())) << "build the sparsedit target first";
  int st = -1;
  auto out = run("flops --model DiT-XL/2 --image-size 256 --sparse --density range:0.61,0.86", &st);
  ASSERT_EQ(st, 0) << out;
  for (const char* word : {"poolingformers", "sdtm sparse-gen", "sdtm recovery", "top", "final", "10x10", "6x6", "mean"})
    EXPECT_NE(out.find(word), std::string::npos) << word << " missing from\n" << out;

  out = run("flops --model DiT-Q/2 --image-size 256", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(out.find("DiT-XL/2"), std::string::npos) << "the error should list valid names:\n" << out;

  out = run("flops --model DiT-XL/2 --image-size 256 --density fixed:8", &st);
  EXPECT_NE(st, 0) << out;
  out = run("flops --model DiT-XL/2 --image-size 256 --sparse --density fixed:99", &st);
  EXPECT_NE(st, 0) << out;
  out = run("flops --model DiT-XL/2 --image-size 250", &st);
  EXPECT_NE(st, 0) << out;
}

TEST(FlopsCommand, SparseDiTCheckpointImpliesSparse) {
  ASSERT_TRUE(std::filesystem::exists(sparsedit_binary())) << "build the sparsedit target first";
  DiTConfig cfg = make(64, 7, 2, 8);
  cfg.num_heads = 4;
  cfg.num_classes = 10;
  const auto layout = SparseLayout::parse("1:1x1,1,1,1:2", cfg.depth);
  sdit::DiT model(cfg, layout);
  const auto dir = std::filesystem::temp_directory_path() / ("sdit_flops_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tiny_sparse.safetensors").string();
  sdit::save_checkpoint(path, sdit::module_state_dict(*model));

  int st = -1;
  auto out = run("flops --ckpt " + path + " --num-heads 4 --density fixed:3 --json", &st);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(st, 0) << out;
  const auto j = parse_json(out);
  EXPECT_EQ(j.value("family", ""), "SparseDiT");
  EXPECT_EQ(j.value("layout", ""), layout.str());
  EXPECT_EQ(j.value("tokens", 0), 16);
  EXPECT_NEAR(j.value("gmacs", 0.0), g(sdit::sparse_flops(cfg, layout, 3)), 1e-9);
}

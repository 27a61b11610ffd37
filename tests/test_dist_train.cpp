// Data-parallel training, sampling and evaluation across real processes (`--nproc 2`, Gloo over
// 127.0.0.1, bounded timeouts): W ranks compute what one process computes (docs/distributed.md §8).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include "cli_runner.h"
#include "dist/world.h"
#include "eval/eval_inputs.h"
#include "io/safetensors.h"
#include <nlohmann/json.hpp>
#include "testing.h"
#include "train/batching.h"
#include "train/trainer.h"
#include "train_testing.h"

using namespace sdit;
using namespace sdit::testing_helpers;
namespace fs = std::filesystem;

namespace {

#define REQUIRE_GLOO() \
  if (!dist::build_support().gloo) GTEST_SKIP() << "this build has no ProcessGroupGloo"

// The command line that trains what tiny_options describes.
std::string train_flags(const TrainOptions& o) {
  std::string f = "train -q --dist-timeout 60 --data " + o.data + " --hidden-size " + std::to_string(o.hidden_size) +
                  " --depth " + std::to_string(o.depth) + " --num-heads " + std::to_string(o.num_heads) +
                  " --patch-size " + std::to_string(o.patch_size) + " --global-batch-size " +
                  std::to_string(o.global_batch_size) + " --lr " + std::to_string(o.lr) + " --ema-decay " +
                  std::to_string(o.ema_decay) + " --steps " + std::to_string(o.steps) + " --ckpt-every " +
                  std::to_string(o.ckpt_every) + " --log-every " + std::to_string(o.log_every) + " -s " +
                  std::to_string(o.seed) + " --results-dir " + o.results_dir;
  if (o.sparse) f += " --sparse --density " + o.density;
  if (!o.density_intervals.empty()) f += " --density-intervals " + o.density_intervals;
  return f;
}

// Every tensor of two training checkpoints (EMA, raw weights, AdamW state) within `tol` relative L2.
void expect_close_checkpoints(const std::string& a_path, const std::string& b_path, double tol) {
  const auto a = read_safetensors(a_path), b = read_safetensors(b_path);
  ASSERT_EQ(a.keys(), b.keys());
  int compared = 0;
  for (const auto& k : a.keys()) {
    if (k.rfind("train.rng.", 0) == 0) continue;  // generator states: only the grids use them
    SCOPED_TRACE(k);
    ASSERT_TRUE(a.at(k).sizes().equals(b.at(k).sizes()));
    const auto x = a.at(k).to(torch::kDouble), y = b.at(k).to(torch::kDouble);
    if (y.abs().max().item<double>() == 0) EXPECT_EQ(x.abs().max().item<double>(), 0.0);
    else EXPECT_LE(rel_l2(x, y), tol);
    ++compared;
  }
  EXPECT_GT(compared, 20);
}

int count_lines(const std::string& path) {
  std::ifstream f(path);
  return static_cast<int>(std::count(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>(), '\n'));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(DistSegments, EveryRankGetsAContiguousChunkAndAllCoverTheBatchOnce) {
  for (int64_t k = 1; k <= 8; ++k)
    for (int64_t extra = 0; extra < 3; ++extra) {
      std::vector<DensityInterval> ivs;
      for (int64_t i = 0; i < k; ++i) ivs.push_back(DensityInterval{i, i + 1, Grid{}, 1 + (i * 7 + extra) % 5, 0.1});
      int64_t total = 0;
      for (const auto& iv : ivs) total += iv.batch;
      for (int w = 1; w <= 8; ++w) {
        int64_t next = 0;
        for (int r = 0; r < w; ++r)
          for (const auto& s : shard_intervals(ivs, r, w)) {
            EXPECT_EQ(s.position, next);  // contiguous, in rank order
            EXPECT_GT(s.count, 0);
            EXPECT_LE(s.first + s.count, ivs[s.interval].batch);
            int64_t begin = 0;
            for (size_t i = 0; i < s.interval; ++i) begin += ivs[i].batch;
            EXPECT_EQ(s.position, begin + s.first);
            next += s.count;
          }
        EXPECT_EQ(next, total) << "K " << k << " W " << w;
      }
    }
  // As many ranks as equal intervals: one interval per rank (the paper's recipe).
  std::vector<DensityInterval> four(4, DensityInterval{0, 1, Grid{}, 2, 0.25});
  for (int r = 0; r < 4; ++r) {
    const auto s = shard_intervals(four, r, 4);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].interval, static_cast<size_t>(r));
    EXPECT_EQ(s[0].count, 2);
  }
}

TEST(DistTrain, TwoRanksGiveTheOneRankModelDenseAndMultiDensity) {
  REQUIRE_GLOO();
  for (bool sparse : {false, true}) {
    SCOPED_TRACE(sparse ? "SparseDiT, 4 density intervals" : "DiT");
    const std::string tag = sparse ? "sparse" : "dense";
    auto one = tiny_options(fresh_dir("one_" + tag), sparse);
    one.steps = 3;
    Trainer::start(one).run();
    auto two = one;
    two.results_dir = fresh_dir("two_" + tag);
    const auto r = run_cli(train_flags(two) + " --nproc 2");
    ASSERT_EQ(r.status, 0) << r.output;
    for (int64_t step : {2, 3})
      expect_close_checkpoints(checkpoint_file(two.results_dir, step), checkpoint_file(one.results_dir, step), 1e-5);
    EXPECT_EQ(count_lines(two.results_dir + "/log.jsonl"), 3);  // rank 0 alone logs
    EXPECT_EQ(read_safetensors(checkpoint_file(two.results_dir, 3)).metadata.at("world_size"), "2");
  }
}

TEST(DistTrain, OneIntervalPerRankWithAsManyRanksAsIntervals) {
  REQUIRE_GLOO();
  auto one = tiny_options(fresh_dir("one_k2"), true);
  one.steps = 2;
  one.density_intervals = "2";
  Trainer::start(one).run();
  auto two = one;
  two.results_dir = fresh_dir("two_k2");
  const auto r = run_cli(train_flags(two) + " --nproc 2");
  ASSERT_EQ(r.status, 0) << r.output;
  expect_close_checkpoints(checkpoint_file(two.results_dir, 2), checkpoint_file(one.results_dir, 2), 1e-5);
}

TEST(DistTrain, ATwoRankCheckpointResumesAtOneRank) {
  REQUIRE_GLOO();
  auto straight = tiny_options(fresh_dir("resume_straight"), true);
  Trainer::start(straight).run();  // 4 steps, one process
  auto half = straight;
  half.results_dir = fresh_dir("resume_half");
  half.steps = 2;
  const auto r = run_cli(train_flags(half) + " --nproc 2");
  ASSERT_EQ(r.status, 0) << r.output;
  TrainOptions cli;
  cli.steps = 4;
  auto resumed = Trainer::resume(half.results_dir, cli, {"steps"});
  EXPECT_EQ(resumed.step(), 2);
  resumed.run();
  expect_close_checkpoints(checkpoint_file(half.results_dir, 4), checkpoint_file(straight.results_dir, 4), 1e-5);
}

TEST(DistTrain, AKilledRankEndsTheOtherWithAClearErrorWithinTheTimeout) {
  REQUIRE_GLOO();
  auto o = tiny_options(fresh_dir("killed"), false);
  o.steps = 1000000;
  o.ckpt_every = 0;
  o.log_every = 1;
  const std::string flags = train_flags(o), log = o.results_dir + "/log.jsonl";
  const auto t0 = std::chrono::steady_clock::now();
  // Two ranks by hand (as srun would start them); once training runs, rank 1 is killed with SIGKILL.
  const std::string env = " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=1 ";
  const auto r = run_sh("port=$((20000 + $$ % 20000)); RANK=1" + env + sparsedit_binary() +
                         " " + flags + " & p=$!; RANK=0" + env + sparsedit_binary() + " " + flags +
                         " & q=$!; i=0; while [ ! -s " + log + " ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
                         "kill -9 $p; wait $q; echo \"rank0 status $?\"");
  const double took = seconds_since(t0);
  EXPECT_NE(r.output.find("rank0 status 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("error: distributed "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("failed on rank 0 of 2 (gloo, timeout 60 s)"), std::string::npos) << r.output;
  EXPECT_LT(took, 50.0) << r.output;  // noticed at once, not after the 60 s timeout
}

TEST(DistTrain, AFailureOnRankZeroStopsEveryRankWithItsMessage) {
  REQUIRE_GLOO();
  auto o = tiny_options(fresh_dir("blocked"), false);
  std::ofstream(o.results_dir + "/checkpoints") << "a file where the checkpoint folder should be";
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_cli(train_flags(o) + " --nproc 2");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("cannot create '" + o.results_dir + "/checkpoints'"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("failed on rank"), std::string::npos) << r.output;  // a decision, not a broken peer
  EXPECT_LT(seconds_since(t0), 30.0) << r.output;
}

// ---- sampling and evaluation across ranks ---------------------------------------------------------------

namespace {

const std::string kModels = (fs::path(__FILE__).parent_path().parent_path() / "models").string();

// The shipped MNIST DiT (pixel space: the samples are the images), a few DDPM steps with guidance.
std::string sample_flags(const std::string& latents, int64_t n, int64_t batch, const std::string& extra,
                         const std::string& grid = "") {
  return "sample -q -t 1 --dist-timeout 60 -m " + kModels + "/mnist-dit.safetensors --steps 4 --cfg-scale 2 --num-samples " +
         std::to_string(n) + " --batch-size " + std::to_string(batch) + " --save-latents " + latents + " -o " +
         (grid.empty() ? latents + ".png" : grid) + " " + extra;
}

torch::Tensor latents_of(const std::string& path) { return read_safetensors(path).at("latents").to(torch::kDouble); }
std::string labels_of(const std::string& path) { return read_safetensors(path).metadata.at("class_labels"); }

void expect_same_images(const torch::Tensor& a, const torch::Tensor& b) {
  ASSERT_TRUE(a.sizes().equals(b.sizes())) << a.sizes() << " vs " << b.sizes();
  for (int64_t i = 0; i < a.size(0); ++i) EXPECT_LE(rel_l2(a[i], b[i]), 1e-5) << "image " << i;
}

}  // namespace

TEST(DistSample, PerImageSeedsGiveTheSameImagesAtAnyRankCountAndBatchSize) {
  REQUIRE_GLOO();
  const std::string one = temp_path("one_rank.safetensors"), two = temp_path("two_ranks.safetensors");
  auto r1 = run_cli(sample_flags(one, 7, 7, "--seed-mode per-image"));
  ASSERT_EQ(r1.status, 0) << r1.output;
  auto r2 = run_cli(sample_flags(two, 7, 4, "--nproc 2"));  // auto = per-image across ranks
  ASSERT_EQ(r2.status, 0) << r2.output;
  expect_same_images(latents_of(two), latents_of(one));
  EXPECT_EQ(labels_of(two), labels_of(one));
  EXPECT_FALSE(fs::exists(two + ".partial"));  // removed once the outputs are written
}

TEST(DistSample, AnInterruptedRunResumesItsFinishedBatchesAtAnotherRankCount) {
  REQUIRE_GLOO();
  const std::string straight = temp_path("straight.safetensors"), resumed = temp_path("resumed.safetensors");
  ASSERT_EQ(run_cli(sample_flags(straight, 6, 2, "--seed-mode per-image")).status, 0);
  // One process samples every global batch, then fails writing its grid: the finished batches stay.
  const std::string npz = resumed + ".npz", partial = npz + ".partial";
  const auto failed = run_cli(sample_flags(resumed, 6, 2, "--seed-mode per-image --save-npz " + npz,
                                           temp_path("no/such/folder/grid.png")));
  ASSERT_NE(failed.status, 0) << failed.output;
  ASSERT_TRUE(fs::exists(partial + "/images_2.safetensors")) << failed.output;
  // Mark one stored batch: a resumed run must take it from the folder instead of sampling it again.
  auto sd = read_safetensors(partial + "/images_2.safetensors");
  StateDict marked;
  marked.metadata = sd.metadata;
  marked.set("samples", torch::zeros_like(sd.at("samples")));
  write_safetensors(partial + "/images_2.safetensors", marked);
  const auto r = run_cli(sample_flags(resumed, 6, 2, "--seed-mode per-image --nproc 2 --save-npz " + npz));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto got = latents_of(resumed), want = latents_of(straight);
  EXPECT_EQ(got.narrow(0, 2, 2).abs().max().item<double>(), 0.0);  // the stored batch, as stored
  expect_same_images(got.narrow(0, 0, 2), want.narrow(0, 0, 2));
  expect_same_images(got.narrow(0, 4, 2), want.narrow(0, 4, 2));
  EXPECT_FALSE(fs::exists(partial));
  // Another request does not mix in a folder it did not write.
  fs::create_directories(partial);
  write_safetensors(partial + "/images_0.safetensors", marked);
  const auto other = run_cli(sample_flags(resumed, 6, 2, "--seed-mode per-image -s 5 --save-npz " + npz));
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.output.find("was written by another sampling request"), std::string::npos) << other.output;
}

TEST(DistSample, DitSeedModeLaysOutSampleDdpsPerRankStreams) {
  REQUIRE_GLOO();
  // W = 2, n = 2 per rank, 8 images: rank r seeds 3·2 + r and its row i of iteration k is image 4k + 2i + r.
  const std::string two = temp_path("dit_two.safetensors"), r0 = temp_path("dit_r0.safetensors"),
                    r1 = temp_path("dit_r1.safetensors");
  auto r = run_cli(sample_flags(two, 8, 2, "--seed-mode dit -s 3 --nproc 2"));
  ASSERT_EQ(r.status, 0) << r.output;
  // One process at seed 6 (= 3·2 + 0) and 7 replays rank 0's and rank 1's streams.
  ASSERT_EQ(run_cli(sample_flags(r0, 4, 2, "--seed-mode dit -s 6")).status, 0);
  ASSERT_EQ(run_cli(sample_flags(r1, 4, 2, "--seed-mode dit -s 7")).status, 0);
  const auto all = latents_of(two);
  const auto a0 = latents_of(r0), a1 = latents_of(r1);
  ASSERT_EQ(all.size(0), 8);
  for (int64_t k = 0; k < 2; ++k)
    for (int64_t i = 0; i < 2; ++i) {
      EXPECT_LE(rel_l2(all[4 * k + 2 * i], a0[2 * k + i]), 1e-6);
      EXPECT_LE(rel_l2(all[4 * k + 2 * i + 1], a1[2 * k + i]), 1e-6);
    }
}

TEST(DistEval, TwoRanksGiveTheOneProcessStatisticsAndFid) {
  REQUIRE_GLOO();
  // 300 noise "images" per side: more samples than the classifier's 128 feature dimensions.
  const std::string a = temp_path("eval_a.safetensors"), b = temp_path("eval_b.safetensors");
  torch::manual_seed(5);
  for (const auto& path : {a, b}) {
    StateDict sd;
    sd.set("images", torch::rand({300, 1, 32, 32}) * 2 - 1);
    write_safetensors(path, sd);
  }
  const std::string flags = "eval --json -q -t 1 --a " + a + " --b " + b + " --classifier " + kModels +
                            "/mnist-classifier.safetensors --batch-size 64";  // 5 feature batches
  const std::string s1 = temp_path("stats1.npz"), s2 = temp_path("stats2.npz");
  const auto r1 = run_cli(flags + " --save-stats " + s1), r2 = run_cli(flags + " --save-stats " + s2 + " --nproc 2");
  ASSERT_EQ(r1.status, 0) << r1.output;
  ASSERT_EQ(r2.status, 0) << r2.output;
  // The ranks see the feature batches one process sees: the same features, float64 sums in another order.
  const auto st1 = read_stats_npz(s1), st2 = read_stats_npz(s2);
  EXPECT_LE(rel_l2(st2.mu, st1.mu), 1e-14);
  EXPECT_LE(rel_l2(st2.sigma, st1.sigma), 1e-14);
  const auto j1 = nlohmann::json::parse(r1.output.substr(r1.output.find('{'))),
             j2 = nlohmann::json::parse(r2.output.substr(r2.output.find('{')));
  const double f1 = j1.at("fid").get<double>(), f2 = j2.at("fid").get<double>();
  EXPECT_GT(f1, 0.0);
  // Tr √(Σ1Σ2) takes square roots of eigenvalues; dead ReLU features make some of them 0, where a
  // 1e-16 perturbation moves √λ by 1e-8: that, not the all-reduce, bounds the agreement.
  EXPECT_NEAR(f2, f1, 1e-6 * f1);
  EXPECT_EQ(j2.at("precision"), j1.at("precision"));
  EXPECT_EQ(j2.at("recall"), j1.at("recall"));
}

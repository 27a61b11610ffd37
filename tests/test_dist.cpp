// The distributed layer (src/dist) and keyed randomness (util/keyed_rng): launch-environment parsing,
// bucket plans, a size-1 World, two ranks as threads of this process (Gloo over 127.0.0.1), and real
// processes through `sparsedit dist-check` (--nproc, environment launches, a crashed, a killed and a
// stalled rank). Every wait is bounded by a short timeout; only 127.0.0.1 is used.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <thread>

#include "cli_runner.h"
#include "dist/buckets.h"
#include "dist/launch_env.h"
#include "dist/local_launch.h"
#include "dist/shard.h"
#include "dist/world.h"
#include "error_testing.h"
#include "testing.h"
#include "util/error.h"
#include "util/keyed_rng.h"

using namespace sdit;
using namespace sdit::dist;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---- keyed randomness ----------------------------------------------------------------------------------

TEST(KeyedRng, SplitMix64MatchesTheReferenceSequence) {
  uint64_t s = 0;  // Vigna's splitmix64.c from state 0
  EXPECT_EQ(splitmix64(s), 0xe220a8397b1dcdafull);
  EXPECT_EQ(splitmix64(s), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(splitmix64(s), 0x06c45d188009454full);
}

TEST(KeyedRng, EachSampleDrawsTheSameWhateverTheSplitAcrossRanks) {
  const KeyedDraws d(/*seed=*/7, /*step=*/1234);
  const int64_t B = 10;
  const auto t_all = d.randint(RngStream::Timestep, sample_range(0, B), 250, 500);
  const auto n_all = d.randn(RngStream::Noise, sample_range(0, B), {4, 8, 8});
  const auto u_all = d.rand(RngStream::LabelDrop, sample_range(0, B));
  // Shards of 1, 2, 3 and 4 "ranks" (contiguous chunks), and an arbitrary subset in another order.
  for (int64_t world : {1, 2, 3, 4}) {
    for (int64_t r = 0; r < world; ++r) {
      const int64_t lo = r * B / world, hi = (r + 1) * B / world;
      const auto ids = sample_range(lo, hi - lo);
      EXPECT_TRUE(torch::equal(d.randint(RngStream::Timestep, ids, 250, 500), t_all.slice(0, lo, hi)));
      EXPECT_TRUE(torch::equal(d.randn(RngStream::Noise, ids, {4, 8, 8}), n_all.slice(0, lo, hi)));
      EXPECT_TRUE(torch::equal(d.rand(RngStream::LabelDrop, ids), u_all.slice(0, lo, hi)));
    }
  }
  const auto some = d.randn(RngStream::Noise, {9, 2, 5}, {4, 8, 8});
  EXPECT_TRUE(torch::equal(some[0], n_all[9]));
  EXPECT_TRUE(torch::equal(some[1], n_all[2]));
  EXPECT_TRUE(torch::equal(some[2], n_all[5]));
  EXPECT_TRUE(t_all.ge(250).all().item<bool>() && t_all.lt(500).all().item<bool>());
  EXPECT_TRUE(u_all.ge(0).all().item<bool>() && u_all.lt(1).all().item<bool>());
}

TEST(KeyedRng, EveryKeyFieldChangesTheDraws) {
  const auto base = KeyedDraws(1, 2).randn(RngStream::Noise, {3}, {64});
  EXPECT_FALSE(torch::equal(base, KeyedDraws(2, 2).randn(RngStream::Noise, {3}, {64})));    // seed
  EXPECT_FALSE(torch::equal(base, KeyedDraws(1, 3).randn(RngStream::Noise, {3}, {64})));    // step
  EXPECT_FALSE(torch::equal(base, KeyedDraws(1, 2).randn(RngStream::Noise, {4}, {64})));    // sample
  EXPECT_FALSE(torch::equal(base, KeyedDraws(1, 2).randn(RngStream::Latent, {3}, {64})));   // stream
  EXPECT_TRUE(torch::equal(base, KeyedDraws(1, 2).randn(RngStream::Noise, {3}, {64})));     // reproducible
  // All 64 bits of the key reach the generator (seeding at::mt19937 by number keeps only 32).
  const uint64_t k = 0x1234567ull;
  auto a = torch::randn({16}, keyed_generator(k)), b = torch::randn({16}, keyed_generator(k | (1ull << 40)));
  EXPECT_FALSE(torch::equal(a, b));
}

TEST(KeyedRng, DrawsHaveTheRightDistribution) {
  const auto n = KeyedDraws(3, 0).randn(RngStream::Latent, sample_range(0, 64), {1024}).to(torch::kDouble);
  EXPECT_NEAR(n.mean().item<double>(), 0.0, 0.02);
  EXPECT_NEAR(n.std().item<double>(), 1.0, 0.02);
  const auto t = KeyedDraws(3, 0).randint(RngStream::Timestep, sample_range(0, 4000), 0, 4).to(torch::kDouble);
  EXPECT_NEAR(t.mean().item<double>(), 1.5, 0.06);
  EXPECT_THROW(KeyedDraws(3, 0).randint(RngStream::Timestep, {0}, 5, 5), Error);
}

// ---- launch environment --------------------------------------------------------------------------------

TEST(DistLaunchEnv, NoVariablesIsOneProcess) {
  const auto l = launch_from_env(env_of({}));
  EXPECT_EQ(l.world_size, 1);
  EXPECT_EQ(l.rank, 0);
  EXPECT_EQ(l.source, "single");
  EXPECT_FALSE(l.distributed());
}

TEST(DistLaunchEnv, TorchrunVariablesWithTheAgentStore) {
  const auto l = launch_from_env(env_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                                         {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.1.2.3"},
                                         {"MASTER_PORT", "29512"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                         {"TORCHELASTIC_RESTART_COUNT", "2"}, {"TORCHELASTIC_RUN_ID", "none"}}));
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 4);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_world_size, 2);
  EXPECT_EQ(l.master_addr, "10.1.2.3");
  EXPECT_EQ(l.master_port, 29512);
  EXPECT_TRUE(l.agent_store);
  EXPECT_EQ(l.restart_count, 2);
  EXPECT_EQ(l.source, "torchrun");
  // Set by hand: rank 0 serves the store; one node unless LOCAL_* say otherwise.
  const auto h = launch_from_env(env_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                                         {"MASTER_PORT", "1234"}, {"SLURM_PROCID", "0"}, {"SLURM_STEP_ID", "0"}}));
  EXPECT_FALSE(h.agent_store);
  EXPECT_EQ(h.local_rank, 1);
  EXPECT_EQ(h.local_world_size, 2);
  EXPECT_EQ(h.source, "env");  // RANK wins over Slurm's variables
}

TEST(DistLaunchEnv, InconsistentVariablesGiveOneClearError) {
  EXPECT_NE(error_of([] { launch_from_env(env_of({{"RANK", "0"}})); }).find("WORLD_SIZE is not"), std::string::npos);
  EXPECT_NE(error_of([] { launch_from_env(env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}})); }).find("outside a world of 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { launch_from_env(env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}})); }).find("RANK='x'"),
            std::string::npos);
  EXPECT_NE(error_of([] { launch_from_env(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}})); })
                .find("MASTER_ADDR is not set"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              launch_from_env(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}));
            }).find("out of range"),
            std::string::npos);
}

TEST(DistLaunchEnv, SlurmStepVariables) {
  const auto l = launch_from_env(env_of({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_STEP_ID", "0"},
                                         {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_LOCALID", "1"}, {"SLURM_NODEID", "1"},
                                         {"SLURM_STEP_TASKS_PER_NODE", "2(x4)"}, {"SLURM_STEP_NODELIST", "gpu[07-10]"},
                                         {"SLURM_JOB_NODELIST", "gpu[01-10]"}, {"SLURM_JOB_ID", "123456"}}));
  EXPECT_EQ(l.source, "slurm");
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 8);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_world_size, 2);
  EXPECT_EQ(l.master_addr, "gpu07");  // the step's first node, not the job's
  EXPECT_EQ(l.master_port, 15000 + 3456);
  EXPECT_FALSE(l.agent_store);
  // Explicit MASTER_ADDR / MASTER_PORT win.
  const auto m = launch_from_env(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEPID", "3"},
                                         {"SLURM_TASKS_PER_NODE", "1(x2)"}, {"SLURM_NODELIST", "a,b"},
                                         {"MASTER_ADDR", "b"}, {"MASTER_PORT", "4000"}, {"SLURMD_NODENAME", "b"}}));
  EXPECT_EQ(m.master_addr, "b");
  EXPECT_EQ(m.master_port, 4000);
  // A batch script (no step id) is one process, even with SLURM_NTASKS > 1.
  EXPECT_FALSE(launch_from_env(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}})).distributed());
  // Rank 0 on a node that is not the list's first: the others could not find its store.
  EXPECT_NE(error_of([] {
              launch_from_env(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"},
                                      {"SLURM_TASKS_PER_NODE", "1(x2)"}, {"SLURM_STEP_NODELIST", "n[1-2]"},
                                      {"SLURMD_NODENAME", "n2"}}));
            }).find("export MASTER_ADDR=n2"),
            std::string::npos);
}

TEST(DistLaunchEnv, SlurmHostListsAndTaskCounts) {
  EXPECT_EQ(slurm_first_host("node1"), "node1");
  EXPECT_EQ(slurm_first_host("gpu[07-10,12],cpu3"), "gpu07");
  EXPECT_EQ(slurm_first_host("cpu3,gpu[07-10]"), "cpu3");
  EXPECT_EQ(slurm_first_host("rack[2-3]-n[001-004]"), "rack2-n001");
  EXPECT_THROW(slurm_first_host("n[1-2"), Error);
  EXPECT_THROW(slurm_first_host("n[a-b]"), Error);
  EXPECT_THROW(slurm_first_host(""), Error);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 0), 2);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 2), 2);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 3), 1);
  EXPECT_THROW(slurm_tasks_on_node("2(x3),1", 4), Error);
  EXPECT_THROW(slurm_tasks_on_node("x", 0), Error);
  EXPECT_THROW(slurm_tasks_on_node("2(x3", 0), Error);
  EXPECT_THROW(slurm_tasks_on_node("2(x99999999999)", 0), Error);
  EXPECT_THROW(slurm_tasks_on_node("0", 0), Error);
  EXPECT_EQ(slurm_tasks_on_node("4", 0), 4);
}

TEST(DistLaunchEnv, TheChildrenOfNprocGetTheCommandLineWithoutIt) {
  const std::vector<std::string> args{"sparsedit", "train", "--nproc", "2", "--steps", "5", "--nproc=3", "--out", "x"};
  EXPECT_EQ(without_flag(args, "--nproc"), (std::vector<std::string>{"sparsedit", "train", "--steps", "5", "--out", "x"}));
  EXPECT_EQ(without_flag({"--nproc", "a"}, "--nproc"), (std::vector<std::string>{"--nproc", "a"}));  // argv[0] stays
  const auto self = own_command_line();
  ASSERT_FALSE(self.empty());
  EXPECT_NE(self[0].find("test_dist"), std::string::npos) << self[0];
}

// ---- buckets -------------------------------------------------------------------------------------------

TEST(DistBuckets, PlanKeepsDtypesApartAndRespectsTheCap) {
  std::vector<torch::Tensor> t{torch::zeros({100}), torch::zeros({10}, torch::kDouble), torch::zeros({100}),
                               torch::zeros({1000}), torch::zeros({10}, torch::kDouble), torch::zeros({50})};
  const auto plan = plan_buckets(t, 800);  // 200 floats
  std::vector<int> seen(t.size(), 0);
  for (const auto& b : plan) {
    int64_t bytes = 0;
    for (size_t k = 0; k < b.size(); ++k) {
      const size_t i = b[k];
      ++seen[i];
      EXPECT_EQ(t[i].scalar_type(), t[b[0]].scalar_type());
      bytes += t[i].numel() * static_cast<int64_t>(t[i].element_size());
      if (k > 0) {
        EXPECT_GT(i, b[k - 1]);  // list order inside a bucket
      }
    }
    EXPECT_TRUE(bytes <= 800 || b.size() == 1) << bytes;
  }
  for (int s : seen) EXPECT_EQ(s, 1);
  const std::vector<std::vector<size_t>> want{{0, 2}, {3}, {1, 4}, {5}};
  EXPECT_EQ(plan, want);
  EXPECT_EQ(plan, plan_buckets(t, 800));  // deterministic
}

TEST(DistBuckets, FlattenThenUnflattenRestoresAnyLayout) {
  auto a = torch::arange(12, torch::kFloat).reshape({3, 4}).t();  // not contiguous
  auto b = torch::arange(5, torch::kFloat) + 100;
  std::vector<torch::Tensor> t{a.clone(), b.clone()};
  const auto flat = flatten_bucket(t, {0, 1});
  ASSERT_EQ(flat.numel(), 17);
  std::vector<torch::Tensor> target{torch::zeros({3, 4}).t(), torch::zeros({5})};
  unflatten_bucket(flat, target, {0, 1});
  EXPECT_TRUE(torch::equal(target[0], a));
  EXPECT_TRUE(torch::equal(target[1], b));
  EXPECT_NE(layout_hash(t), layout_hash({a.reshape({12}), b}));
  EXPECT_EQ(layout_hash(t), layout_hash({torch::ones({4, 3}), torch::ones({5})}));
}

TEST(DistShard, RangesCoverEveryItemOnceInRankOrder) {
  for (int64_t n : {0, 1, 7, 256, 1001})
    for (int w = 1; w <= 8; ++w) {
      int64_t next = 0;
      for (int r = 0; r < w; ++r) {
        const auto s = shard_range(n, r, w);
        EXPECT_EQ(s.begin, next);
        EXPECT_LE(s.size(), n / w + 1);
        EXPECT_GE(s.size(), n / w);
        next = s.end;
      }
      EXPECT_EQ(next, n);
    }
  EXPECT_EQ(shard_range(10, 0, 1).size(), 10);
  EXPECT_THROW(shard_range(10, 2, 2), Error);
}

// ---- a World of one process ----------------------------------------------------------------------------

TEST(DistWorld, OneProcessCommunicatesNothing) {
  const World w = World::connect(launch_from_env(env_of({})));
  EXPECT_EQ(w.size(), 1);
  EXPECT_EQ(w.rank(), 0);
  EXPECT_TRUE(w.is_root());
  EXPECT_FALSE(w.is_distributed());
  EXPECT_EQ(w.backend(), "none");
  EXPECT_EQ(w.describe(), "1 process");
  std::vector<torch::Tensor> t{torch::arange(5, torch::kFloat), torch::ones({2}, torch::kDouble)};
  const auto before = t[0].clone();
  w.allreduce_sum(t);
  w.broadcast(t);
  w.barrier();
  w.expect_same(1, "anything");
  EXPECT_TRUE(torch::equal(t[0], before));
  EXPECT_EQ(w.allreduce(2.5), 2.5);
  EXPECT_EQ(w.allreduce(std::vector<double>{1, 2}, Reduce::Max), (std::vector<double>{1, 2}));
  EXPECT_TRUE(torch::equal(w.all_gather_rows(t[0].reshape({5, 1})), t[0].reshape({5, 1})));
  EXPECT_FALSE(w.agree_stop("").stop);
  const auto v = w.agree_stop("loss is NaN");
  EXPECT_TRUE(v.stop);
  EXPECT_EQ(v.message(), "rank 0: loss is NaN");
  EXPECT_THROW(w.broadcast(t, 1), Error);
  EXPECT_THROW(World::connect(Launch{}, WorldOptions{"gloo", 0.0, torch::kCPU}), Error);
}

TEST(DistWorld, WithoutC10dAWorldOfTwoFailsClearly) {
  if (build_support().c10d) GTEST_SKIP() << "this build has c10d (the no-c10d path is built with -DSPARSEDIT_DIST=OFF)";
  Launch l;
  l.world_size = 2;
  const auto msg = error_of([&] { World::connect(l); });
  EXPECT_NE(msg.find("built without c10d"), std::string::npos) << msg;
}

// ---- two ranks as threads of this process (Gloo over 127.0.0.1) ----------------------------------------

namespace {

Launch local_launch(int rank, int world, int port) {
  Launch l;
  l.rank = l.local_rank = rank;
  l.world_size = l.local_world_size = world;
  l.master_addr = "127.0.0.1";
  l.master_port = port;
  l.source = "env";
  return l;
}

// Runs body(world) on `n` threads, each a rank of a fresh world; returns each rank's error ("" if none).
std::vector<std::string> run_ranks(int n, double timeout_s, const std::function<void(const World&)>& body) {
  const int port = free_port();
  std::vector<std::string> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        const World w = World::connect(local_launch(r, n, port), WorldOptions{"gloo", timeout_s, torch::kCPU});
        body(w);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

#define REQUIRE_GLOO() \
  if (!build_support().gloo) GTEST_SKIP() << "this build has no ProcessGroupGloo"

}  // namespace

TEST(DistThreads, CollectivesAgreeWithTheSingleProcessValues) {
  REQUIRE_GLOO();
  const auto errors = run_ranks(2, 20, [](const World& w) {
    EXPECT_EQ(w.backend(), "gloo");
    // Parameters broadcast from rank 0 (leaves that require grad: copied under NoGradGuard).
    auto p = torch::full({3, 4}, w.rank() + 1.0).requires_grad_(true);
    auto q = torch::full({7}, 10.0 * (w.rank() + 1), torch::kDouble).requires_grad_(true);
    std::vector<torch::Tensor> params{p, q};
    w.broadcast(params);
    EXPECT_TRUE(torch::equal(p, torch::ones({3, 4})));
    EXPECT_TRUE(torch::equal(q, torch::full({7}, 10.0, torch::kDouble)));
    // Bucketed sum (several buckets of 64 bytes), equal to the sum each rank computes alone.
    auto mine = [](int r) {
      const KeyedDraws d(50 + r, 0);
      return std::vector<torch::Tensor>{d.randn(RngStream::Noise, {0}, {40})[0], d.randn(RngStream::Noise, {1}, {3, 3})[0],
                                        d.randn(RngStream::Noise, {2}, {5}, torch::kDouble)[0]};
    };
    auto t = mine(w.rank());
    const auto a = mine(0), b = mine(1);
    w.allreduce_sum(t, 64);
    for (size_t i = 0; i < t.size(); ++i) EXPECT_TRUE(torch::equal(t[i], a[i] + b[i])) << i;
    // Gradients: rank 1 never touched q; it contributes zeros and the layouts still match.
    p.mutable_grad() = torch::full({3, 4}, w.rank() + 1.0);
    if (w.rank() == 0) q.mutable_grad() = torch::ones({7}, torch::kDouble);
    sum_gradients(w, params);
    EXPECT_TRUE(torch::equal(p.grad(), torch::full({3, 4}, 3.0)));
    EXPECT_TRUE(torch::equal(q.grad(), torch::ones({7}, torch::kDouble)));
    // Variable row counts (rank 0 has 3 rows, rank 1 has 1), and scalars.
    const auto rows = torch::full({w.rank() == 0 ? 3 : 1, 2}, float(w.rank()));
    const auto all = w.all_gather_rows(rows);
    EXPECT_TRUE(torch::equal(all, torch::cat({torch::zeros({3, 2}), torch::ones({1, 2})})));
    EXPECT_EQ(w.allreduce(w.rank() + 0.25), 1.5);
    EXPECT_EQ(w.allreduce(double(w.rank()), Reduce::Max), 1.0);
    const auto v = w.agree_stop(w.rank() == 1 ? "checkpoint write failed" : "");
    EXPECT_TRUE(v.stop);
    EXPECT_EQ(v.message(), "rank 1: checkpoint write failed");
    EXPECT_GT(w.comm_seconds(), 0.0);
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TEST(DistThreads, MismatchedRowsFailOnEveryRankAndTheWorldStaysUsable) {
  REQUIRE_GLOO();
  const auto errors = run_ranks(2, 20, [](const World& w) {
    const auto msg = error_of([&] { w.all_gather_rows(torch::zeros({2, w.rank() == 0 ? 3 : 4})); });
    EXPECT_NE(msg.find("rank 1 passes Float rows [*, 4] but rank 0 passes Float rows [*, 3]"), std::string::npos) << msg;
    const auto diff = error_of([&] { w.expect_same(static_cast<uint64_t>(w.rank()), "the options hash"); });
    EXPECT_NE(diff.find("the options hash differs between rank 0 and rank(s) 1"), std::string::npos) << diff;
    EXPECT_EQ(w.allreduce(1.0), 2.0);
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TEST(DistThreads, ARankThatStopsCallingCollectivesFailsTheOthersWithinTheTimeout) {
  REQUIRE_GLOO();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> failed_after(2, -1);
  const auto errors = run_ranks(2, 2.0, [&](const World& w) {
    w.barrier();
    const auto t1 = std::chrono::steady_clock::now();
    // Rank 1 is "stuck" for twice the timeout, then tries; rank 0 waits in a bucketed all-reduce with 20
    // buckets in flight: it must fail after one timeout, not one per bucket, and tear down promptly.
    if (w.rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(4));
    std::vector<torch::Tensor> t;
    for (int i = 0; i < 20; ++i) t.push_back(torch::ones({1000}));
    try {
      w.allreduce_sum(t, 1024);
    } catch (const Error&) {
      failed_after[static_cast<size_t>(w.rank())] = seconds_since(t1);
      EXPECT_THROW(w.barrier(), Error);  // a broken world refuses further collectives at once
      throw;
    }
  });
  EXPECT_NE(errors[0].find("distributed allreduce failed on rank 0 of 2 (gloo, timeout 2 s)"), std::string::npos)
      << errors[0];
  EXPECT_NE(errors[1], "");
  EXPECT_GE(failed_after[0], 1.5);
  EXPECT_LT(failed_after[0], 3.5);  // the timeout, not a multiple of it
  EXPECT_LT(seconds_since(t0), 10.0);  // measured 5.0 s: rank 1 wakes at 4 s, each teardown ~1 s
}

TEST(DistThreads, ARankThatNeverArrivesFailsTheRendezvousWithinTheTimeout) {
  REQUIRE_GLOO();
  const auto t0 = std::chrono::steady_clock::now();
  const auto msg = error_of([] { World::connect(local_launch(0, 2, free_port()), WorldOptions{"gloo", 2.0, torch::kCPU}); });
  EXPECT_NE(msg.find("distributed rendezvous failed on rank 0 of 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not every rank joined in time"), std::string::npos) << msg;
  EXPECT_LT(seconds_since(t0), 12.0);  // libtorch 1.13's TCPStore waits about 2 x timeout + 2 s
}

// ---- real processes: sparsedit dist-check --------------------------------------------------------------

namespace {

std::string rank_env(int rank, int port) {
  return "RANK=" + std::to_string(rank) + " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
         " OMP_NUM_THREADS=1 ";
}

}  // namespace

TEST(DistProcesses, NprocForksTwoRanksThatPassEveryCheck) {
  REQUIRE_GLOO();
  const auto r = run_cli("dist-check --nproc 2 --timeout 30");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2 (local 0 of 2), gloo, nproc, store 127.0.0.1:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("all checks passed on every rank"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("FAIL"), std::string::npos) << r.output;
}

TEST(DistProcesses, RanksLaunchedByEnvironmentVariables) {
  REQUIRE_GLOO();
  // As torchrun --standalone or srun would: rank 0 serves the store itself.
  const int port = free_port();
  const std::string bin = sparsedit_binary();
  const auto r = run_sh(rank_env(1, port) + bin + " dist-check --timeout 30 & p=$!; " + rank_env(0, port) + bin +
                        " dist-check --timeout 30; a=$?; wait $p; b=$?; echo \"status $a $b\"");
  EXPECT_NE(r.output.find("status 0 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2 (local 0 of 2), gloo, env"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" (rank 0's), timeout 30 s"), std::string::npos) << r.output;
}

TEST(DistProcesses, AKilledRankEndsTheSurvivorWithAClearErrorLongBeforeTheTimeout) {
  REQUIRE_GLOO();
  const int port = free_port();
  const std::string bin = sparsedit_binary();
  const auto t0 = std::chrono::steady_clock::now();
  // Rank 1 joins, then hangs before the first collective and is killed with SIGKILL; rank 0 waits in it.
  const auto r = run_sh(rank_env(1, port) + bin + " dist-check --timeout 60 --stall-rank 1 & p=$!; " + rank_env(0, port) +
                        bin + " dist-check --timeout 60 & q=$!; sleep 3; kill -9 $p; wait $q; echo \"rank0 status $?\"");
  const double took = seconds_since(t0);
  EXPECT_NE(r.output.find("rank0 status 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("error: distributed "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("failed on rank 0 of 2 (gloo, timeout 60 s)"), std::string::npos) << r.output;
  EXPECT_LT(took, 20.0) << r.output;  // the peer's death is noticed in milliseconds, not after 60 s
}

TEST(DistProcesses, NprocPropagatesACrashedRankAndStopsTheOthers) {
  REQUIRE_GLOO();
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_cli("dist-check --nproc 2 --timeout 60 --fail-rank 1");
  EXPECT_EQ(r.status, 3) << r.output;  // the crashed rank's status
  EXPECT_NE(r.output.find("sparsedit --nproc: rank 1 exited with status 3"), std::string::npos) << r.output;
  EXPECT_LT(seconds_since(t0), 20.0);
}

TEST(DistProcesses, AStalledRankFailsTheOthersAfterTheTimeout) {
  REQUIRE_GLOO();
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_cli("dist-check --nproc 2 --timeout 3 --stall-rank 1");
  const double took = seconds_since(t0);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("failed on rank 0 of 2 (gloo, timeout 3 s): "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Timed out waiting 3000ms"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sparsedit --nproc: rank 0 exited with status 1; stopping the other ranks"),
            std::string::npos)
      << r.output;
  EXPECT_GE(took, 3.0);
  EXPECT_LT(took, 20.0);
}

TEST(DistProcesses, LaunchMistakesGiveOneClearLine) {
  const int port = free_port();
  auto r = run_sh("RANK=0 " + sparsedit_binary() + " dist-check");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("error: distributed launch: RANK is set but WORLD_SIZE is not"), std::string::npos) << r.output;
  r = run_sh(rank_env(0, port) + sparsedit_binary() + " dist-check --nproc 2");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("cannot run inside another launch"), std::string::npos) << r.output;
  if (!build_support().gloo) return;
  const auto t0 = std::chrono::steady_clock::now();
  r = run_sh(rank_env(0, port) + sparsedit_binary() + " dist-check --timeout 2");  // rank 1 never comes
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("error: distributed rendezvous failed on rank 0 of 2 (env, store at 127.0.0.1:"),
            std::string::npos)
      << r.output;
  EXPECT_LT(seconds_since(t0), 15.0);
}

TEST(DistProcesses, TorchrunNoPythonJoinsTheAgentStore) {
  REQUIRE_GLOO();
  if (run_sh("command -v torchrun").status != 0) GTEST_SKIP() << "no torchrun (Debian: apt-get install python3-torch)";
  // Debian's torchrun 1.13 on Python 3.11 needs --no_python and --redirects/--tee (DISTRIBUTED.md 1.8).
  const auto r = run_sh("OMP_NUM_THREADS=1 timeout 120 torchrun --nnodes=1 --nproc_per_node=2 --master_addr=127.0.0.1 "
                        "--master_port=" + std::to_string(free_port()) + " --redirects=1 --tee=1 --no_python " +
                        sparsedit_binary() + " dist-check --timeout 30");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2 (local 0 of 2), gloo, torchrun, store 127.0.0.1:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" (launcher's), timeout 30 s"), std::string::npos) << r.output;  // the agent's store
  EXPECT_NE(r.output.find("all checks passed on every rank"), std::string::npos) << r.output;
}

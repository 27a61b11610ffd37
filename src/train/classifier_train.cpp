#include "train/classifier_train.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "data/npz.h"
#include "util/compat.h"
#include "util/error.h"

namespace sdit {
namespace {

// 8-bit round trip, so the network is trained on exactly the pixel values it is later shown.
torch::Tensor as_eval_input(const torch::Tensor& images, int64_t side) {
  return classifier_input(quantize_images(images), side);
}

// Each image moved by its own random offset in [-shift, shift]², background filling the border.
torch::Tensor random_shift(const torch::Tensor& x, int64_t shift) {
  if (shift <= 0) return x;
  const int64_t h = x.size(2), w = x.size(3);
  auto padded = torch::constant_pad_nd(x, {shift, shift, shift, shift}, -1.0);
  auto offs = torch::randint(0, 2 * shift + 1, {x.size(0), 2}, torch::kLong);
  auto out = torch::empty_like(x);
  auto o = offs.accessor<int64_t, 2>();
  for (int64_t i = 0; i < x.size(0); ++i)
    out[i].copy_(padded[i].narrow(1, o[i][0], h).narrow(2, o[i][1], w));
  return out;
}

}  // namespace

double classifier_accuracy(MnistClassifier& model, const torch::Tensor& images, const torch::Tensor& labels) {
  if (images.size(0) != labels.size(0) || images.size(0) == 0) fail("accuracy needs as many labels as images");
  auto out = run_classifier(model, quantize_images(images), 500, torch::kCPU);
  return out.predictions.eq(labels.to(torch::kLong)).to(torch::kDouble).mean().item<double>();
}

ClassifierTrainResult train_mnist_classifier(MnistClassifier& model, const MnistData& data,
                                             const ClassifierTrainOptions& o) {
  if (o.epochs < 1 || o.batch_size < 1 || !(o.lr > 0)) fail("training needs epochs >= 1, batch size >= 1 and lr > 0");
  const auto start = std::chrono::steady_clock::now();
  torch::manual_seed(o.seed);
  const int64_t side = model->config().side;
  auto x_all = as_eval_input(data.train_images, side);
  auto y_all = data.train_labels.to(torch::kLong);
  if (o.limit > 0 && o.limit < x_all.size(0)) {
    auto pick = torch::randperm(x_all.size(0), torch::kLong).narrow(0, 0, o.limit);
    x_all = x_all.index_select(0, pick);
    y_all = y_all.index_select(0, pick);
  }
  const int64_t n = x_all.size(0);
  if (n == 0) fail("no training images");
  const int64_t steps_per_epoch = (n + o.batch_size - 1) / o.batch_size, total = steps_per_epoch * o.epochs;
  model->to(torch::kCPU);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(o.lr));
  int64_t step = 0;
  ClassifierTrainResult r;
  r.train_images = n;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    model->train();
    auto perm = torch::randperm(n, torch::kLong);
    double loss_sum = 0;
    for (int64_t s = 0; s < n; s += o.batch_size) {
      auto idx = perm.narrow(0, s, std::min(o.batch_size, n - s));
      auto x = random_shift(x_all.index_select(0, idx), o.shift);
      auto y = y_all.index_select(0, idx);
      // Cosine decay: a fixed Adam rate leaves the last epochs noisy on a small training set.
      const double lr = 0.5 * o.lr * (1 + std::cos(M_PI * static_cast<double>(step++) / static_cast<double>(total)));
      static_cast<torch::optim::AdamOptions&>(opt.param_groups()[0].options()).lr(lr);
      opt.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>() * static_cast<double>(idx.size(0));
    }
    r.test_accuracy = classifier_accuracy(model, data.test_images, data.test_labels);
    if (o.log) {
      char line[160];
      std::snprintf(line, sizeof line, "epoch %lld/%lld: train loss %.4f, held-out accuracy %.2f%%",
                    static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs), loss_sum / static_cast<double>(n),
                    100 * r.test_accuracy);
      o.log(line);
    }
  }
  model->eval();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace sdit

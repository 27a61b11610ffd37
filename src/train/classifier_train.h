#pragma once
// Training the MNIST classifier that MNIST FID and class accuracy are measured with.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

#include "models/mnist_classifier.h"
#include "data/mnist.h"

namespace sdit {

struct ClassifierTrainOptions {
  int64_t epochs = 8;
  int64_t batch_size = 64;
  double lr = 2e-3;       // Adam; cosine-decayed to 0 over the run
  uint64_t seed = 0;
  int64_t limit = 0;      // train on the first `limit` images of a shuffled split (0 = all)
  int64_t shift = 2;      // random translation of up to ±shift px per image (0 = none)
  std::function<void(const std::string&)> log;  // one line per epoch; may be empty
};

struct ClassifierTrainResult {
  double test_accuracy = 0;  // on data.test_images (the held-out digits)
  int64_t train_images = 0;
  double seconds = 0;
};

// Trains `model` in place on data.train_* (images quantized to 8 bits, as every eval input is) and
// reports held-out accuracy. Deterministic for a given seed and thread count.
ClassifierTrainResult train_mnist_classifier(MnistClassifier& model, const MnistData& data,
                                             const ClassifierTrainOptions& options);

// Top-1 accuracy on float images in [-1, 1] (quantized to 8 bits first) with int64 labels.
double classifier_accuracy(MnistClassifier& model, const torch::Tensor& images, const torch::Tensor& labels);

}  // namespace sdit

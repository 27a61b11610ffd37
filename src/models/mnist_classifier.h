#pragma once
// The project's MNIST classifier: the feature extractor behind MNIST FID (its penultimate layer, as
// Inception's pool3 is for ImageNet FID) and the judge of class-conditional samples.
//
// Architecture: `convs.i` blocks (k×k conv, padding k/2, ReLU, 2×2 max-pool) on a 1×32×32 input,
// then fc1 (the feature layer, ReLU) and fc2 (logits). Every size is read back from the tensor
// shapes on load, so a retrained network of other widths needs no code change.
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "io/state_dict.h"

namespace sdit {

struct MnistClassifierConfig {
  std::vector<int64_t> channels{16, 32, 64};  // output channels of each conv block
  int64_t kernel = 3;
  int64_t features = 128;  // fc1 width: the FID feature dimension
  int64_t classes = 10;
  int64_t side = 32;       // input height and width
  std::string describe() const;
};

class MnistClassifierImpl : public torch::nn::Module {
 public:
  explicit MnistClassifierImpl(const MnistClassifierConfig& config);
  // x: (N, 1, side, side) float in [-1, 1]. Post-ReLU fc1 activations, (N, features).
  torch::Tensor features(const torch::Tensor& x);
  torch::Tensor logits_from_features(const torch::Tensor& f) { return fc2_(f); }
  torch::Tensor forward(const torch::Tensor& x) { return logits_from_features(features(x)); }
  const MnistClassifierConfig& config() const { return config_; }

 private:
  MnistClassifierConfig config_;
  torch::nn::ModuleList convs_;
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(MnistClassifier);

// Reads the architecture from the shapes; throws sdit::Error when the tensors do not form one.
MnistClassifierConfig detect_classifier_config(const StateDict& sd, const std::string& what);
MnistClassifier load_mnist_classifier(const std::string& path);
void save_mnist_classifier(MnistClassifier& model, const std::string& path,
                           const std::map<std::string, std::string>& metadata = {});

// uint8 images (N, C, H, W) as every eval input arrives -> classifier input (N, 1, 32, 32) in
// [-1, 1]: RGB is averaged to grey (MNIST samples saved as RGB PNGs repeat one channel), and 28×28
// digits get MNIST's 2-pixel background border. Throws sdit::Error for other sizes.
torch::Tensor classifier_input(const torch::Tensor& images_u8, int64_t side = 32);

struct ClassifierOutputs {
  torch::Tensor features;     // (N, features) float32, CPU
  torch::Tensor predictions;  // (N) int64, CPU
};
// Runs the network over uint8 images in batches, without gradients.
ClassifierOutputs run_classifier(MnistClassifier& model, const torch::Tensor& images_u8, int64_t batch,
                                 const torch::Device& device);

}  // namespace sdit

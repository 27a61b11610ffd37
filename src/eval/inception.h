#pragma once
// The FID Inception-v3: torchvision's Inception3 as pytorch-fid patches it to reproduce the 2015
// TensorFlow graph that FID is defined on, up to the 2048-d pool3 features. Weights are the
// `pt_inception-2015-12-05` state dict the user supplies (pytorch-fid's release file, legacy or zip
// torch.save, or safetensors); parameter names are torchvision's, so named_parameters() is that
// file's layout.
//
// Where the FID variant differs from torchvision (and why it must): the 3x3 average pools inside
// Mixed_5b-5d, 6b-6e and 7b exclude the padding from the mean, and Mixed_7c pools with a max, as
// the TF graph does. Inputs are resized to 299x299 (bilinear, align_corners=false) and mapped
// from [0, 1] to [-1, 1], as pytorch-fid does before block 0.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace sdit {

// Conv (no bias) + BatchNorm (eps 1e-3, running statistics) + ReLU; keys conv.weight, bn.*.
class InceptionConvImpl : public torch::nn::Module {
 public:
  InceptionConvImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel, torch::ExpandingArray<2> stride = 1,
                    torch::ExpandingArray<2> padding = 0);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(InceptionConv);

class FidInceptionV3Impl : public torch::nn::Module {
 public:
  FidInceptionV3Impl();
  // x: (N, 3, H, W) float in [0, 1], any size. Returns pool3, (N, 2048).
  torch::Tensor forward(const torch::Tensor& x);

 private:
  std::vector<std::function<torch::Tensor(const torch::Tensor&)>> layers_;  // in order, pools included
  torch::nn::Linear fc_{nullptr};  // the TF graph's 1008-way head: in the weights file, unused for FID
};
TORCH_MODULE(FidInceptionV3);

constexpr int64_t kInceptionFeatures = 2048;

// The TF graph's 3x3 stride-1 average pool: border means divide by the valid neighbours only.
torch::Tensor tf_avg_pool3x3(const torch::Tensor& x);

// Loads the weights (any checkpoint format load_checkpoint reads). A file without fc.* (only the
// logits need it) or without BatchNorm's num_batches_tracked counters (the release predates them)
// is accepted; every other missing, unexpected or mis-shaped tensor is an error that names it.
FidInceptionV3 load_fid_inception(const std::string& path);

// uint8 images (N, C, H, W), C = 1 or 3 (grey is repeated to RGB, as PIL's convert("RGB")) ->
// pool3 features (N, 2048) float32 on the CPU, in batches without gradients.
torch::Tensor inception_features(FidInceptionV3& net, const torch::Tensor& images_u8, int64_t batch,
                                 const torch::Device& device);

}  // namespace sdit

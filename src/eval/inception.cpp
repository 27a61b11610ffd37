#include "eval/inception.h"

#include <algorithm>
#include <map>

#include "io/checkpoint.h"
#include "models/load.h"
#include "util/compat.h"
#include "util/error.h"

namespace sdit {

InceptionConvImpl::InceptionConvImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel,
                                     torch::ExpandingArray<2> stride, torch::ExpandingArray<2> padding) {
  conv_ = register_module(
      "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
  bn_ = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(1e-3)));
}

torch::Tensor InceptionConvImpl::forward(const torch::Tensor& x) { return torch::relu(bn_(conv_(x))); }

torch::Tensor tf_avg_pool3x3(const torch::Tensor& x) {
  return torch::avg_pool2d(x, 3, 1, 1, /*ceil_mode=*/false, /*count_include_pad=*/false);
}

namespace {

using Array2 = torch::ExpandingArray<2>;

// A mixed block: named InceptionConvs (torchvision's branch names) run in chains.
class MixedImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;

 protected:
  void conv(const std::string& name, int64_t in, int64_t out, Array2 kernel, Array2 stride = 1, Array2 padding = 0) {
    convs_.insert_or_assign(name, register_module(name, InceptionConv(in, out, kernel, stride, padding)));
  }
  torch::Tensor chain(std::initializer_list<const char*> names, torch::Tensor x) {
    for (const char* n : names) x = convs_.at(n)->forward(x);
    return x;
  }

 private:
  std::map<std::string, InceptionConv> convs_;
};

// Mixed_5b-5d (pytorch-fid's FIDInceptionA): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1.
class MixedA : public MixedImpl {
 public:
  MixedA(int64_t in, int64_t pool_features) {
    conv("branch1x1", in, 64, 1);
    conv("branch5x5_1", in, 48, 1);
    conv("branch5x5_2", 48, 64, 5, 1, 2);
    conv("branch3x3dbl_1", in, 64, 1);
    conv("branch3x3dbl_2", 64, 96, 3, 1, 1);
    conv("branch3x3dbl_3", 96, 96, 3, 1, 1);
    conv("branch_pool", in, pool_features, 1);
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    return torch::cat({chain({"branch1x1"}, x), chain({"branch5x5_1", "branch5x5_2"}, x),
                       chain({"branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"}, x),
                       chain({"branch_pool"}, tf_avg_pool3x3(x))},
                      1);
  }
};

// Mixed_6a: the first grid reduction, 35 -> 17.
class MixedB : public MixedImpl {
 public:
  explicit MixedB(int64_t in) {
    conv("branch3x3", in, 384, 3, 2);
    conv("branch3x3dbl_1", in, 64, 1);
    conv("branch3x3dbl_2", 64, 96, 3, 1, 1);
    conv("branch3x3dbl_3", 96, 96, 3, 2);
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    return torch::cat({chain({"branch3x3"}, x), chain({"branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"}, x),
                       torch::max_pool2d(x, 3, 2)},
                      1);
  }
};

// Mixed_6b-6e (FIDInceptionC): factorised 7x7 convolutions of width c7.
class MixedC : public MixedImpl {
 public:
  MixedC(int64_t in, int64_t c7) {
    const Array2 k17{1, 7}, p17{0, 3}, k71{7, 1}, p71{3, 0};
    conv("branch1x1", in, 192, 1);
    conv("branch7x7_1", in, c7, 1);
    conv("branch7x7_2", c7, c7, k17, 1, p17);
    conv("branch7x7_3", c7, 192, k71, 1, p71);
    conv("branch7x7dbl_1", in, c7, 1);
    conv("branch7x7dbl_2", c7, c7, k71, 1, p71);
    conv("branch7x7dbl_3", c7, c7, k17, 1, p17);
    conv("branch7x7dbl_4", c7, c7, k71, 1, p71);
    conv("branch7x7dbl_5", c7, 192, k17, 1, p17);
    conv("branch_pool", in, 192, 1);
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    return torch::cat({chain({"branch1x1"}, x), chain({"branch7x7_1", "branch7x7_2", "branch7x7_3"}, x),
                       chain({"branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"},
                             x),
                       chain({"branch_pool"}, tf_avg_pool3x3(x))},
                      1);
  }
};

// Mixed_7a: the second grid reduction, 17 -> 8.
class MixedD : public MixedImpl {
 public:
  explicit MixedD(int64_t in) {
    conv("branch3x3_1", in, 192, 1);
    conv("branch3x3_2", 192, 320, 3, 2);
    conv("branch7x7x3_1", in, 192, 1);
    conv("branch7x7x3_2", 192, 192, Array2{1, 7}, 1, Array2{0, 3});
    conv("branch7x7x3_3", 192, 192, Array2{7, 1}, 1, Array2{3, 0});
    conv("branch7x7x3_4", 192, 192, 3, 2);
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    return torch::cat({chain({"branch3x3_1", "branch3x3_2"}, x),
                       chain({"branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"}, x),
                       torch::max_pool2d(x, 3, 2)},
                      1);
  }
};

// Mixed_7b (FIDInceptionE_1, average pool) and Mixed_7c (FIDInceptionE_2, max pool): the 3x3s
// split into parallel 1x3 and 3x1 halves.
class MixedE : public MixedImpl {
 public:
  MixedE(int64_t in, bool max_pool) : max_pool_(max_pool) {
    const Array2 k13{1, 3}, p13{0, 1}, k31{3, 1}, p31{1, 0};
    conv("branch1x1", in, 320, 1);
    conv("branch3x3_1", in, 384, 1);
    conv("branch3x3_2a", 384, 384, k13, 1, p13);
    conv("branch3x3_2b", 384, 384, k31, 1, p31);
    conv("branch3x3dbl_1", in, 448, 1);
    conv("branch3x3dbl_2", 448, 384, 3, 1, 1);
    conv("branch3x3dbl_3a", 384, 384, k13, 1, p13);
    conv("branch3x3dbl_3b", 384, 384, k31, 1, p31);
    conv("branch_pool", in, 192, 1);
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    auto t = chain({"branch3x3_1"}, x);
    t = torch::cat({chain({"branch3x3_2a"}, t), chain({"branch3x3_2b"}, t)}, 1);
    auto d = chain({"branch3x3dbl_1", "branch3x3dbl_2"}, x);
    d = torch::cat({chain({"branch3x3dbl_3a"}, d), chain({"branch3x3dbl_3b"}, d)}, 1);
    auto p = max_pool_ ? torch::max_pool2d(x, 3, 1, 1) : tf_avg_pool3x3(x);
    return torch::cat({chain({"branch1x1"}, x), t, d, chain({"branch_pool"}, p)}, 1);
  }

 private:
  bool max_pool_;
};

}  // namespace

FidInceptionV3Impl::FidInceptionV3Impl() {
  auto stem = [&](const char* name, int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = 0) {
    auto m = register_module(name, InceptionConv(in, out, k, stride, pad));
    layers_.push_back([m](const torch::Tensor& x) { return m->forward(x); });
  };
  auto max_pool = [&] { layers_.push_back([](const torch::Tensor& x) { return torch::max_pool2d(x, 3, 2); }); };
  auto mixed = [&](const char* name, std::shared_ptr<MixedImpl> m) {
    register_module(name, m);
    layers_.push_back([m](const torch::Tensor& x) { return m->forward(x); });
  };
  stem("Conv2d_1a_3x3", 3, 32, 3, 2);
  stem("Conv2d_2a_3x3", 32, 32, 3);
  stem("Conv2d_2b_3x3", 32, 64, 3, 1, 1);
  max_pool();
  stem("Conv2d_3b_1x1", 64, 80, 1);
  stem("Conv2d_4a_3x3", 80, 192, 3);
  max_pool();
  mixed("Mixed_5b", std::make_shared<MixedA>(192, 32));
  mixed("Mixed_5c", std::make_shared<MixedA>(256, 64));
  mixed("Mixed_5d", std::make_shared<MixedA>(288, 64));
  mixed("Mixed_6a", std::make_shared<MixedB>(288));
  mixed("Mixed_6b", std::make_shared<MixedC>(768, 128));
  mixed("Mixed_6c", std::make_shared<MixedC>(768, 160));
  mixed("Mixed_6d", std::make_shared<MixedC>(768, 160));
  mixed("Mixed_6e", std::make_shared<MixedC>(768, 192));
  mixed("Mixed_7a", std::make_shared<MixedD>(768));
  mixed("Mixed_7b", std::make_shared<MixedE>(1280, false));
  mixed("Mixed_7c", std::make_shared<MixedE>(2048, true));
  fc_ = register_module("fc", torch::nn::Linear(kInceptionFeatures, 1008));
}

torch::Tensor FidInceptionV3Impl::forward(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3) fail("Inception-v3 takes (N, 3, H, W) images, got ", shape_str(x.sizes().vec()));
  namespace F = torch::nn::functional;
  auto h = F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{299, 299})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
  h = 2 * h - 1;
  for (const auto& layer : layers_) h = layer(h);
  return h.mean({2, 3});
}

FidInceptionV3 load_fid_inception(const std::string& path) {
  const std::string what = "FID Inception weights '" + path + "'";
  StateDict sd = load_checkpoint(path);
  FidInceptionV3 net;
  LoadReport r;
  try {
    r = load_state_dict(*net, sd, /*strict=*/false);
  } catch (const Error& e) {
    fail(what, ": ", e.what());
  }
  // The release file predates BatchNorm's step counter; fc is only needed for logits.
  auto optional = [](const std::string& k) {
    return k.rfind("fc.", 0) == 0 || (k.size() > 20 && k.compare(k.size() - 20, 20, ".num_batches_tracked") == 0);
  };
  r.missing.erase(std::remove_if(r.missing.begin(), r.missing.end(), optional), r.missing.end());
  if (!r.ok()) fail(what, " do not fit the FID Inception-v3 (pt_inception-2015-12-05): ", r.str());
  net->eval();
  return net;
}

torch::Tensor inception_features(FidInceptionV3& net, const torch::Tensor& images_u8, int64_t batch,
                                 const torch::Device& device) {
  if (images_u8.dim() != 4 || images_u8.scalar_type() != torch::kByte)
    fail("Inception input must be uint8 (N, C, H, W), got ", shape_str(images_u8.sizes().vec()));
  const int64_t c = images_u8.size(1);
  if (c != 1 && c != 3) fail("Inception-v3 takes 1- or 3-channel images, got ", c, " channels");
  if (images_u8.size(0) == 0) fail("no images to compute Inception features of");
  if (batch < 1) fail("batch size must be >= 1, got ", batch);
  torch::NoGradGuard ng;
  net->eval();
  net->to(device);
  std::vector<torch::Tensor> feats;
  for (int64_t s = 0; s < images_u8.size(0); s += batch) {
    const int64_t b = std::min(batch, images_u8.size(0) - s);
    auto x = images_u8.narrow(0, s, b).to(device).to(torch::kFloat) / 255.0;
    if (c == 1) x = x.expand({b, 3, x.size(2), x.size(3)});
    feats.push_back(net->forward(x).to(torch::kCPU));
  }
  return torch::cat(feats);
}

}  // namespace sdit

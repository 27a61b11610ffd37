#include "models/mnist_classifier.h"

#include <sstream>

#include "io/safetensors.h"
#include "models/load.h"
#include "util/compat.h"
#include "util/error.h"

namespace sdit {

std::string MnistClassifierConfig::describe() const {
  std::ostringstream os;
  os << "conv";
  for (size_t i = 0; i < channels.size(); ++i) os << (i ? "-" : " ") << channels[i];
  os << " (" << kernel << "x" << kernel << ", each + max-pool), fc " << features << ", fc " << classes;
  return os.str();
}

MnistClassifierImpl::MnistClassifierImpl(const MnistClassifierConfig& c) : config_(c) {
  if (c.channels.empty() || c.kernel < 1 || c.kernel % 2 == 0 || c.features < 1 || c.classes < 2)
    fail("invalid MNIST classifier configuration: ", c.describe());
  if ((c.side >> c.channels.size()) < 1) fail("MNIST classifier: too many pooling blocks for ", c.side, " px");
  convs_ = register_module("convs", torch::nn::ModuleList());
  int64_t in = 1;
  for (auto out : c.channels) {
    convs_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, c.kernel).padding(c.kernel / 2)));
    in = out;
  }
  const int64_t s = c.side >> c.channels.size();
  fc1_ = register_module("fc1", torch::nn::Linear(in * s * s, c.features));
  fc2_ = register_module("fc2", torch::nn::Linear(c.features, c.classes));
}

torch::Tensor MnistClassifierImpl::features(const torch::Tensor& x) {
  auto h = x;
  for (const auto& m : *convs_) h = torch::max_pool2d(torch::relu(m->as<torch::nn::Conv2dImpl>()->forward(h)), 2);
  return torch::relu(fc1_(h.flatten(1)));
}

MnistClassifierConfig detect_classifier_config(const StateDict& sd, const std::string& what) {
  MnistClassifierConfig c;
  c.channels.clear();
  int64_t in = 1;
  for (int i = 0;; ++i) {
    const auto* w = sd.find("convs." + std::to_string(i) + ".weight");
    if (!w) break;
    if (w->dim() != 4 || w->size(1) != in || w->size(2) != w->size(3))
      fail(what, ": convs.", i, ".weight has shape ", shape_str(w->sizes().vec()), ", expected [out, ", in, ", k, k]");
    c.kernel = w->size(2);
    c.channels.push_back(w->size(0));
    in = w->size(0);
  }
  if (c.channels.empty()) fail(what, ": not an MNIST classifier (no convs.0.weight)");
  const auto* f1 = sd.find("fc1.weight");
  const auto* f2 = sd.find("fc2.weight");
  if (!f1 || !f2 || f1->dim() != 2 || f2->dim() != 2 || f2->size(1) != f1->size(0))
    fail(what, ": not an MNIST classifier (fc1.weight / fc2.weight missing or not chained)");
  const int64_t s = c.side >> c.channels.size();
  if (f1->size(1) != in * s * s)
    fail(what, ": fc1.weight takes ", f1->size(1), " inputs, but ", c.channels.size(), " conv blocks on ", c.side,
         " px give ", in * s * s);
  c.features = f1->size(0);
  c.classes = f2->size(0);
  return c;
}

MnistClassifier load_mnist_classifier(const std::string& path) {
  auto sd = read_safetensors(path);
  const std::string what = "MNIST classifier '" + path + "'";
  MnistClassifier m(detect_classifier_config(sd, what));
  try {
    load_state_dict(*m, sd, /*strict=*/true);
  } catch (const Error& e) {
    fail(what, ": ", e.what());
  }
  m->eval();
  return m;
}

void save_mnist_classifier(MnistClassifier& model, const std::string& path,
                           const std::map<std::string, std::string>& metadata) {
  auto sd = module_state_dict(*model);
  sd.metadata = metadata;
  sd.metadata["architecture"] = model->config().describe();
  write_safetensors(path, sd);
}

torch::Tensor classifier_input(const torch::Tensor& images_u8, int64_t side) {
  if (images_u8.dim() != 4 || images_u8.scalar_type() != torch::kByte)
    fail("classifier input must be uint8 (N, C, H, W), got ", shape_str(images_u8.sizes().vec()));
  const int64_t c = images_u8.size(1), h = images_u8.size(2), w = images_u8.size(3);
  if (c != 1 && c != 3) fail("the MNIST classifier takes 1- or 3-channel images, got ", c, " channels");
  auto x = images_u8.to(torch::kFloat).mean(1, /*keepdim=*/true) / 127.5 - 1.0;
  if (h == side && w == side) return x;
  const int64_t pad = (side - 28) / 2;
  if (h == 28 && w == 28) return torch::constant_pad_nd(x, {pad, pad, pad, pad}, -1.0);
  fail("the MNIST classifier takes ", side, "x", side, " (or 28x28) images, got ", h, "x", w);
}

ClassifierOutputs run_classifier(MnistClassifier& model, const torch::Tensor& images_u8, int64_t batch,
                                 const torch::Device& device) {
  if (batch < 1) fail("batch size must be >= 1, got ", batch);
  torch::NoGradGuard ng;
  model->eval();
  model->to(device);
  std::vector<torch::Tensor> feats, preds;
  for (int64_t s = 0; s < images_u8.size(0); s += batch) {
    const int64_t b = std::min(batch, images_u8.size(0) - s);
    auto x = classifier_input(images_u8.narrow(0, s, b), model->config().side).to(device);
    auto f = model->features(x);
    preds.push_back(model->logits_from_features(f).argmax(1).to(torch::kCPU));
    feats.push_back(f.to(torch::kCPU));
  }
  ClassifierOutputs out;
  if (feats.empty()) fail("no images to classify");
  out.features = torch::cat(feats);
  out.predictions = torch::cat(preds);
  return out;
}

}  // namespace sdit

#pragma once
// One handle over the two model families, so the CLI, samplers and trainer need not care which
// one a checkpoint holds. The config and layout are detected from the tensors (detect_from_weights).
#include <torch/torch.h>

#include <optional>
#include <string>

#include "io/state_dict.h"
#include "models/config.h"
#include "models/dit.h"
#include "models/sparsedit.h"

namespace sdit {

class Model {
 public:
  Model() = default;
  static Model build(const DetectedModel& spec);  // fresh (default-initialised) weights
  // Reads any checkpoint format, detects the config, loads strictly; errors name keys and shapes.
  static Model from_state_dict(const StateDict& sd, std::optional<int64_t> num_heads = std::nullopt);
  static Model load(const std::string& path, std::optional<int64_t> num_heads = std::nullopt);

  bool sparse() const { return spec_.family == ModelFamily::SparseDiT; }
  const DetectedModel& spec() const { return spec_; }
  const DiTConfig& config() const { return spec_.config; }
  std::string describe() const;  // "DiT (hidden 64, depth 4, ...)" one line
  torch::nn::Module& module();
  const torch::nn::Module& module() const;
  std::shared_ptr<torch::nn::Module> module_ptr() const;
  // side is the sparse grid side for a SparseDiT (ignored by a dense DiT); <= 0 means dense grid.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y, int64_t side = 0);
  // State dict plus metadata (config with heads, family, layout) for writing to disk.
  StateDict state_dict() const;
  void to(torch::Device device, torch::Dtype dtype = torch::kFloat32);
  void train(bool on);
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  DetectedModel spec_;
  DiT dense_{nullptr};
  SparseDiT sparse_{nullptr};
  std::map<std::string, std::string> metadata_;  // kept from the file (e.g. recommended sampling settings)
};

}  // namespace sdit

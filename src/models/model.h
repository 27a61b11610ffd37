#pragma once
// The handle the rest of the program holds: a Backbone of some family, its ModelSpec (family,
// config, SparseDiT layout) and the metadata of the file it came from. Copies share the network.
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "io/state_dict.h"
#include "models/backbone.h"
#include "models/flops.h"
#include "models/registry.h"

namespace sdit {

class Model {
 public:
  Model() = default;
  // Fresh weights (libtorch's default init; init_weights() for the family's training init).
  static Model build(const ModelSpec& spec);
  // Any checkpoint: training state stripped, foreign layouts renamed, config detected, strict load
  // (errors name keys and shapes).
  static Model from_state_dict(const StateDict& sd, const LoadOptions& opt = {});
  static Model load(const std::string& path, const LoadOptions& opt = {});

  const ModelSpec& spec() const { return spec_; }
  const LatentSpec& latent() const { return latent_; }
  bool sparse() const { return spec_.sparse(); }
  const SparseLayout* layout() const { return spec_.layout ? &*spec_.layout : nullptr; }
  std::string name() const { return display_name(spec_); }  // "DiT", "SparseDiT", ...
  std::string describe() const;                              // one line
  // The dense token grid of the model's default input size.
  Grid grid() const { return latent_.grid(); }

  // x per latent().shape; t (B) original timesteps; sparse: the grid the SDTMs pool to (empty = dense).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c,
                        const Grid& sparse = {});
  Conditioning null_conditioning(const Conditioning& cond) const { return backbone().null_conditioning(cond); }
  void check_conditioning(const Conditioning& cond, int64_t batch) const { backbone().check_conditioning(cond, batch); }
  FlopsReport flops(const Grid& dense, const Grid& sparse = {}) const;
  void init_weights() { backbone().init_weights(); }

  torch::nn::Module& module();
  const torch::nn::Module& module() const;
  // Weights plus metadata (family, config, layout) for writing to disk.
  StateDict state_dict() const;
  int64_t parameter_count() const;  // without copying anything
  void to(torch::Device device, torch::Dtype dtype = torch::kFloat32);
  void train(bool on);
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::map<std::string, std::string>& metadata() { return metadata_; }

 private:
  Backbone& backbone() const;

  ModelSpec spec_;
  LatentSpec latent_;
  std::shared_ptr<Backbone> net_;
  std::map<std::string, std::string> metadata_;  // kept from the file (e.g. recommended sampling settings)
};

}  // namespace sdit

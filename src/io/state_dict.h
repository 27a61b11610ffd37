#pragma once
// An ordered name -> tensor map plus string metadata: the common currency of every
// checkpoint reader and writer (safetensors, torch.save zip, diffusers layout).
#include <torch/torch.h>

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace sdit {

class StateDict {
 public:
  void set(const std::string& key, const torch::Tensor& t);  // appends or replaces in place
  bool contains(const std::string& key) const { return index_.count(key) != 0; }
  const torch::Tensor& at(const std::string& key) const;  // throws sdit::Error naming the key
  const torch::Tensor* find(const std::string& key) const;
  bool erase(const std::string& key);
  const std::vector<std::string>& keys() const { return keys_; }
  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }
  int64_t numel() const;

  std::map<std::string, std::string> metadata;  // safetensors __metadata__, and ours

 private:
  std::vector<std::string> keys_;
  std::unordered_map<std::string, torch::Tensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// Training checkpoints (sparsedit train) keep the EMA weights under the model's own names and the
// optimiser, raw weights and RNG states under "train.*"; the model is the rest.
constexpr const char* kTrainingStatePrefix = "train.";
StateDict without_training_state(const StateDict& sd);

}  // namespace sdit

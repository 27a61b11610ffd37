#include "io/state_dict.h"

#include <algorithm>

#include "util/error.h"

namespace sdit {

void StateDict::set(const std::string& key, const torch::Tensor& t) {
  if (!index_.count(key)) {
    index_[key] = keys_.size();
    keys_.push_back(key);
  }
  tensors_[key] = t;
}

const torch::Tensor& StateDict::at(const std::string& key) const {
  auto it = tensors_.find(key);
  if (it == tensors_.end()) fail("missing tensor '", key, "'");
  return it->second;
}

const torch::Tensor* StateDict::find(const std::string& key) const {
  auto it = tensors_.find(key);
  return it == tensors_.end() ? nullptr : &it->second;
}

bool StateDict::erase(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  keys_.erase(keys_.begin() + it->second);
  tensors_.erase(key);
  index_.clear();
  for (size_t i = 0; i < keys_.size(); ++i) index_[keys_[i]] = i;
  return true;
}

int64_t StateDict::numel() const {
  int64_t n = 0;
  for (auto& k : keys_) n += tensors_.at(k).numel();
  return n;
}

StateDict without_training_state(const StateDict& sd) {
  StateDict out;
  for (const auto& k : sd.keys())
    if (k.rfind(kTrainingStatePrefix, 0) != 0) out.set(k, sd.at(k));
  out.metadata = sd.metadata;
  return out;
}

}  // namespace sdit

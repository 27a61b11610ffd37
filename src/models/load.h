#pragma once
// Loading a StateDict into a module whose named_parameters()/named_buffers() are the checkpoint layout.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/state_dict.h"

namespace sdit {

struct LoadReport {
  std::vector<std::string> missing;      // in the module, not in the file
  std::vector<std::string> unexpected;   // in the file, not in the module
  std::vector<std::string> mismatched;   // "key: expected [..], found [..]"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const;
};

// Copies matching tensors (cast to the parameter dtype/device). strict: throws sdit::Error with the
// full report when anything is missing, unexpected or mis-shaped; otherwise returns the report.
LoadReport load_state_dict(torch::nn::Module& m, const StateDict& sd, bool strict = true);
// The module's parameters and buffers as a StateDict (CPU, contiguous), keys in registration order.
StateDict module_state_dict(const torch::nn::Module& m);

}  // namespace sdit

#include "models/load.h"

#include <set>
#include <sstream>

#include "util/error.h"

namespace sdit {

std::string LoadReport::str() const {
  std::ostringstream os;
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << "\n  " << what << " (" << v.size() << "):";
    for (size_t i = 0; i < v.size() && i < 20; ++i) os << "\n    " << v[i];
    if (v.size() > 20) os << "\n    ... and " << v.size() - 20 << " more";
  };
  list("missing keys", missing);
  list("unexpected keys", unexpected);
  list("shape mismatches", mismatched);
  return os.str();
}

static std::vector<std::pair<std::string, torch::Tensor>> module_tensors(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  for (auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

LoadReport load_state_dict(torch::nn::Module& m, const StateDict& sd, bool strict) {
  LoadReport r;
  std::set<std::string> seen;
  auto tensors = module_tensors(m);
  for (auto& [name, dst] : tensors) {
    seen.insert(name);
    const auto* src = sd.find(name);
    if (!src) {
      r.missing.push_back(name);
      continue;
    }
    if (src->sizes() != dst.sizes()) {
      r.mismatched.push_back(name + ": expected " + shape_str(dst.sizes().vec()) + ", found " +
                             shape_str(src->sizes().vec()));
    }
  }
  for (auto& k : sd.keys())
    if (!seen.count(k)) r.unexpected.push_back(k);
  if (strict && !r.ok()) fail("checkpoint does not fit the model:", r.str());
  torch::NoGradGuard ng;
  for (auto& [name, dst] : tensors) {
    const auto* src = sd.find(name);
    if (src && src->sizes() == dst.sizes()) dst.copy_(src->to(dst.device(), dst.scalar_type()));
  }
  return r;
}

StateDict module_state_dict(const torch::nn::Module& m) {
  StateDict sd;
  for (auto& [name, t] : module_tensors(m)) sd.set(name, t.detach().to(torch::kCPU).contiguous().clone());
  return sd;
}

}  // namespace sdit

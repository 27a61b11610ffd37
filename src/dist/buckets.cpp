#include "dist/buckets.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "util/error.h"
#include "util/keyed_rng.h"

namespace sdit::dist {

std::vector<std::vector<size_t>> plan_buckets(const std::vector<torch::Tensor>& tensors, int64_t cap_bytes) {
  if (cap_bytes < 1) fail("bucket size must be positive, got ", cap_bytes, " bytes");
  std::vector<std::vector<size_t>> done;
  // One open bucket per (dtype, device); keyed by a string so the order of keys never matters.
  std::map<std::string, std::pair<std::vector<size_t>, int64_t>> open;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (!t.defined()) fail("collective on an undefined tensor (index ", i, ")");
    const std::string key = std::string(c10::toString(t.scalar_type())) + "@" + t.device().str();
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    auto& [ids, size] = open[key];
    if (!ids.empty() && size + bytes > cap_bytes) {
      done.push_back(std::move(ids));
      ids.clear();
      size = 0;
    }
    ids.push_back(i);
    size += bytes;
  }
  // Close the remaining buckets in the order of their first tensor, so the plan follows the list.
  std::vector<std::vector<size_t>> rest;
  for (auto& kv : open)
    if (!kv.second.first.empty()) rest.push_back(std::move(kv.second.first));
  std::sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.front() < b.front(); });
  for (auto& b : rest) done.push_back(std::move(b));
  return done;
}

torch::Tensor flatten_bucket(const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& bucket) {
  if (bucket.size() == 1) return tensors[bucket[0]].detach().reshape({-1}).contiguous();
  std::vector<torch::Tensor> flat;
  flat.reserve(bucket.size());
  for (size_t i : bucket) flat.push_back(tensors[i].detach().reshape({-1}));
  return torch::cat(flat);
}

void unflatten_bucket(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors,
                      const std::vector<size_t>& bucket) {
  torch::NoGradGuard no_grad;  // the targets may be parameters (broadcast at start)
  int64_t offset = 0;
  for (size_t i : bucket) {
    auto t = tensors[i];
    const int64_t n = t.numel();
    t.copy_(flat.narrow(0, offset, n).view(t.sizes()));
    offset += n;
  }
}

uint64_t layout_hash(const std::vector<torch::Tensor>& tensors) {
  uint64_t h = tensors.size();
  auto mix = [&h](uint64_t v) {
    uint64_t s = h ^ v;
    h = splitmix64(s);
  };
  for (const auto& t : tensors) {
    mix(static_cast<uint64_t>(t.scalar_type()));
    mix(static_cast<uint64_t>(t.dim()));
    for (int64_t d : t.sizes()) mix(static_cast<uint64_t>(d));
  }
  return h;
}

}  // namespace sdit::dist

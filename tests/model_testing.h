#pragma once
// Small builders the model tests share.
#include <torch/torch.h>

#include "models/conditioning.h"
#include "models/registry.h"

namespace sdit::testing_helpers {

// Class-label conditioning.
inline Conditioning labels(const torch::Tensor& y) {
  Conditioning c;
  c.labels = y;
  return c;
}

// Load options with an explicit head count (the golden models' width has no default).
inline LoadOptions heads(int64_t n) {
  LoadOptions o;
  o.num_heads = n;
  return o;
}

}  // namespace sdit::testing_helpers

#include "models/conditioning.h"

#include <array>

#include "util/error.h"

namespace sdit {
namespace {

// The fields in one fixed order, so every operation treats them alike.
std::array<torch::Tensor*, 5> fields(Conditioning& c) {
  return {&c.labels, &c.context, &c.context_mask, &c.img_hw, &c.aspect_ratio};
}
std::array<const torch::Tensor*, 5> fields(const Conditioning& c) {
  return {&c.labels, &c.context, &c.context_mask, &c.img_hw, &c.aspect_ratio};
}

template <typename Fn>
Conditioning map(const Conditioning& in, Fn fn) {
  Conditioning out;
  auto src = fields(in);
  auto dst = fields(out);
  for (size_t i = 0; i < src.size(); ++i)
    if (src[i]->defined()) *dst[i] = fn(*src[i]);
  return out;
}

}  // namespace

int64_t Conditioning::batch() const {
  for (const auto* f : fields(*this))
    if (f->defined()) return f->size(0);
  return 0;
}

Conditioning Conditioning::to(const torch::Device& device) const {
  return map(*this, [&](const torch::Tensor& t) { return t.to(device); });
}

Conditioning Conditioning::narrow(int64_t start, int64_t n) const {
  return map(*this, [&](const torch::Tensor& t) { return t.narrow(0, start, n); });
}

Conditioning Conditioning::index_select(const torch::Tensor& rows) const {
  return map(*this, [&](const torch::Tensor& t) { return t.index_select(0, rows.to(t.device())); });
}

Conditioning Conditioning::cat(const Conditioning& a, const Conditioning& b) {
  Conditioning out;
  auto fa = fields(a);
  auto fb = fields(b);
  auto fo = fields(out);
  for (size_t i = 0; i < fa.size(); ++i) {
    if (fa[i]->defined() != fb[i]->defined())
      fail("conditioning: cannot batch a conditional and an unconditional input that differ in their fields");
    if (fa[i]->defined()) *fo[i] = torch::cat({*fa[i], *fb[i]}, 0);
  }
  return out;
}

void check_class_labels(const Conditioning& c, int64_t batch, int64_t num_classes, const std::string& model) {
  if (!c.labels.defined() || c.labels.dim() != 1 || c.labels.size(0) != batch)
    fail("a ", model, " needs one class label per sample");
  if (batch == 0) return;
  const auto lo = c.labels.min().item<int64_t>(), hi = c.labels.max().item<int64_t>();
  const auto bad = lo < 0 ? lo : hi;
  if (lo < 0 || hi >= num_classes)
    fail("class label ", bad, " is out of range: the model has ", num_classes, " classes (0..", num_classes - 1, ")");
}

}  // namespace sdit

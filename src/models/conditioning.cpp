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

}  // namespace sdit

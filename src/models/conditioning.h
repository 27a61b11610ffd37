#pragma once
// Everything a denoiser forward needs besides x and t. Each family reads the fields it uses and
// ignores the rest; rows are samples, so a CFG batch is cat(cond, uncond) row-wise.
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace sdit {

struct Conditioning {
  torch::Tensor labels;        // (B) int64: class labels (DiT, class-conditional Latte)
  torch::Tensor context;       // (B, L, D) text features (PixArt: T5 last_hidden_state)
  torch::Tensor context_mask;  // (B, L) nonzero = a real token
  torch::Tensor img_hw;        // (B, 2) [height, width] in pixels (PixArt-MS micro-condition)
  torch::Tensor aspect_ratio;  // (B, 1) (PixArt-MS micro-condition)

  // Rows of the first defined field; 0 when nothing is set (an unconditional model).
  int64_t batch() const;
  bool empty() const { return batch() == 0; }
  Conditioning to(const torch::Device& device) const;
  Conditioning narrow(int64_t start, int64_t n) const;
  Conditioning index_select(const torch::Tensor& rows) const;
  // Row-wise concatenation, field by field; a field must be defined in both or in neither.
  static Conditioning cat(const Conditioning& a, const Conditioning& b);
};

// Class-conditional models: one int64 label per sample, each in [0, num_classes); `model` names the
// family in the error.
void check_class_labels(const Conditioning& c, int64_t batch, int64_t num_classes, const std::string& model);

}  // namespace sdit

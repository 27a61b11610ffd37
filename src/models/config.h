#pragma once
// Model hyper-parameters: the dense DiT config, the SparseDiT layout, and their detection from
// the tensors of a checkpoint (head counts cannot be read from shapes; see default_heads).
#include <cstdint>
#include <optional>
#include <string>

namespace sdit {

class StateDict;

struct DiTConfig {
  int64_t input_size = 32;  // latent side (image / 8), or pixel side for pixel-space models
  int64_t patch_size = 2;
  int64_t in_channels = 4;
  int64_t hidden_size = 1152;
  int64_t depth = 28;
  int64_t num_heads = 16;
  int64_t num_classes = 1000;
  bool learn_sigma = true;
  double mlp_ratio = 4.0;

  int64_t out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  int64_t grid() const { return input_size / patch_size; }  // H = W of the dense token grid
  int64_t tokens() const { return grid() * grid(); }
  std::string to_json() const;
  static DiTConfig from_json(const std::string& json);
};

// Published configs: "DiT-XL/2" etc. input_size is left at its default (32); throws on unknown names.
DiTConfig dit_preset(const std::string& name);
// 384->6, 768->12, 1024->16, 1152->16; nullopt otherwise (the caller must then ask for --num-heads).
std::optional<int64_t> default_heads(int64_t hidden_size);

// SparseDiT segment layout, written P:SxG,N,R,D:T — e.g. 2:4x1,3,1,1:2 for DiT-XL (28 blocks).
struct SparseLayout {
  int64_t poolingformers = 2;
  int64_t sdtms = 4;
  int64_t gen = 1;       // sparse-gen (cross-attention) blocks per SDTM
  int64_t sparse = 3;    // sparse blocks per SDTM
  int64_t recovery = 1;  // dense-recovery blocks per SDTM
  int64_t dense = 1;     // dense blocks per SDTM
  int64_t top = 2;

  int64_t blocks_per_sdtm() const { return gen + sparse + recovery + dense; }
  int64_t depth() const { return poolingformers + sdtms * blocks_per_sdtm() + top; }
  std::string str() const;
  // Throws sdit::Error with the arithmetic when the layout does not add up to `depth` (if given).
  static SparseLayout parse(const std::string& text, std::optional<int64_t> depth = std::nullopt);
  static SparseLayout default_for_depth(int64_t depth);
};

enum class ModelFamily { DiT, SparseDiT };

struct DetectedModel {
  ModelFamily family = ModelFamily::DiT;
  DiTConfig config;
  SparseLayout layout;        // meaningful for SparseDiT
  bool heads_known = false;   // false when neither metadata nor default_heads fixed num_heads
};

// Reads the config from tensor shapes and key names (and metadata "config"/"layout" when present).
// num_heads_override wins over everything. Throws sdit::Error on a state dict that is neither model.
DetectedModel detect_from_weights(const StateDict& sd, std::optional<int64_t> num_heads_override = std::nullopt);

}  // namespace sdit

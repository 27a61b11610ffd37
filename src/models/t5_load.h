#pragma once
// Loading HF T5 checkpoints into T5EncoderModel: config.json + model.safetensors, sharded
// safetensors or .bin (index files), full T5ForConditionalGeneration checkpoints (decoder and
// lm_head ignored) or encoder-only ones, in any float dtype, converted tensor by tensor straight
// from the memory map into parameters allocated in the target dtype. Loading the 19 GB fp32 XXL
// as bf16 therefore peaks near the bf16 model (9.5 GB), not the file.
#include <functional>
#include <string>

#include "models/t5.h"

namespace sdit {

struct T5LoadOptions {
  torch::Dtype dtype = torch::kFloat32;  // parameters (and so activations): fp32 or bf16
  torch::Device device = torch::kCPU;
  std::function<void(const std::string&)> log;  // one-line notes (ignored tensors); may be empty
};

struct T5LoadInfo {
  std::string weights;          // the file or index read
  int64_t tensors_loaded = 0;
  int64_t ignored_decoder = 0;  // decoder.* and lm_head.* tensors of a full T5 checkpoint
  bool embed_from_alias = false;  // the embedding came from encoder.embed_tokens.weight
};

// `folder`/config.json.
T5Config read_t5_config(const std::string& folder);

// A folder holding config.json and the weights (file names as HF's from_pretrained looks for them).
// Errors (sdit::Error) name the key: missing encoder tensors, unexpected non-decoder tensors, and
// shapes that differ from config.json (key, expected and found shapes).
T5EncoderModel load_t5_encoder(const std::string& folder, const T5LoadOptions& options = {}, T5LoadInfo* info = nullptr);

// Parses "fp32" | "float32" | "bf16" | "bfloat16"; refuses fp16 (T5 v1.1 overflows there; HF's mixed
// fp16 path, fp32 `wo` plus clamps, is not implemented).
torch::Dtype parse_t5_dtype(const std::string& name);

}  // namespace sdit

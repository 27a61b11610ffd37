#pragma once
// One entry point for every checkpoint the project reads: safetensors files, torch.save zips
// (flat state dicts or DiT train.py checkpoints), and diffusers DiT folders, all returned with
// the original DiT / SparseDiT key names.
#include <torch/torch.h>

#include <string>

#include "io/state_dict.h"

namespace sdit {

// A .safetensors file, a torch.save .pt zip, or a directory (diffusers model folder, or a folder
// holding exactly one .safetensors). For .pt: takes "ema", else "model", else the dict itself;
// an argparse.Namespace under "args" becomes JSON in metadata["args"]. Diffusers DiT layouts are
// converted back (metadata["source_format"] = "diffusers"; pos_embed recomputed).
StateDict load_checkpoint(const std::string& path);

// By extension: .safetensors, or .pt/.pth (torch.save zip). Atomic.
void save_checkpoint(const std::string& path, const StateDict& sd);

// MAE 2-D sin-cos table (DiT's get_2d_sincos_pos_embed): float64 math, float32 result of shape
// (1, grid*grid, hidden). hidden must be divisible by 4.
torch::Tensor sincos_pos_embed_2d(int64_t hidden, int64_t grid);

// True when the keys are diffusers' DiTTransformer2DModel names.
bool is_diffusers_dit(const StateDict& sd);

// Renames a diffusers DiT state dict to the original layout. `config_json` is the transformer's
// config.json text (its sample_size fixes the pos_embed grid); `source` names it in errors.
StateDict convert_diffusers_dit(const StateDict& sd, const std::string& config_json, const std::string& source);

}  // namespace sdit

#pragma once
// One entry point for every checkpoint file the project reads: safetensors files, torch.save zips
// (flat state dicts, or training checkpoints holding one), and model folders. io/ knows file
// formats only: the tensors come back under the names the file gives them; a family that
// recognises a foreign layout renames them (models/registry.h, native_state_dict).
#include <torch/torch.h>

#include <string>

#include "io/state_dict.h"

namespace sdit {

// A .safetensors file, a torch.save .pt zip, or a directory (a diffusers model folder, possibly
// under transformer/, or a folder holding exactly one .safetensors). For .pt: takes "ema", else
// "model", else "state_dict", else the dict itself (the conventions of DiT's, Latte's and PixArt's
// training scripts); an argparse.Namespace under "args" becomes JSON in metadata["args"]. A folder's
// config.json text comes back in metadata["diffusers_config"], the file read in "source_file".
StateDict load_checkpoint(const std::string& path);

// By extension: .safetensors, or .pt/.pth (torch.save zip). Atomic.
void save_checkpoint(const std::string& path, const StateDict& sd);

}  // namespace sdit

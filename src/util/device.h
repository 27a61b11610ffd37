#pragma once
// The one place a --device name becomes a torch::Device, for every subcommand and the trainer.
#include <torch/torch.h>

#include <string>

namespace sdit {

// "cpu" | "cuda" | "cuda:N"; throws sdit::Error for anything else, or when CUDA is asked for and
// absent. Choosing a CUDA device also switches TF32 off (compat::set_tf32): fp32 means fp32, which
// keeps GPU runs and training within the golden tolerances.
torch::Device parse_device(const std::string& name);

}  // namespace sdit

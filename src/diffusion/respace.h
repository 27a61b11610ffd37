#pragma once
// Timestep respacing (DiT diffusion/respace.py): which original timesteps a shorter sampling
// process keeps. The index arithmetic must be bit-identical to the Python so that "250" keeps
// exactly the same 250 timesteps as the reference.
#include <cstdint>
#include <string>
#include <vector>

namespace sdit {

// spec: "" (all steps), "N" (one section), "N1,N2,..." (equal sections, each with its own count)
// or "ddimN" (the smallest integer stride giving exactly N steps). Returns the kept original
// timesteps sorted ascending. Throws sdit::Error on malformed or impossible specs.
std::vector<int64_t> space_timesteps(int64_t num_timesteps, const std::string& spec);

}  // namespace sdit

#pragma once
// Randomness keyed on (seed, step, sample, stream) instead of on a generator's call order.
//
// Data-parallel training and sharded sampling need every sample's random draws (its timestep, its
// noise, its label-dropout coin, a sampled image's starting latent) to be a function of the sample
// alone: then W ranks that each draw only their own slice of the batch compute exactly what one
// process drawing the whole batch computes, and a run resumed at another world size continues the
// same streams. A generator shared by the batch cannot give that: its n-th draw depends on how many
// draws came before it on that rank.
//
// Each (seed, step, sample, stream) gets its own CPU Mersenne-Twister generator whose whole 624-word
// state is filled from a SplitMix64 sequence started at a hash of the key. (Seeding at::mt19937 with a
// number would use only its low 32 bits: with 10^8 keys in a long run, ~10^6 pairs of samples would
// share their noise, and 50K sampled images would contain two identical starting latents with 25%
// probability.) The draws themselves are libtorch's (randn, randint, rand on that generator), made on
// the CPU; move them to the device afterwards. A draw's values therefore depend on the key and the
// libtorch build only, never on the device, the batch split or the rank.
//
// Lives in util/ (the lowest layer) because its users span the layers: data order and augmentation
// (data/), the samplers' per-image noise (diffusion/), the trainer (train/), sharded sampling (cli/).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace sdit {

// Which draw of a sample a generator serves. Values are part of every run's randomness: append new
// streams, never renumber.
enum class RngStream : uint64_t {
  Timestep = 1,      // training: t of a sample, uniform in its density interval [t_begin, t_end)
  Noise = 2,         // training: the Gaussian noise added to x0
  LabelDrop = 3,     // training: classifier-free-guidance label dropout coin
  CaptionDrop = 4,   // training: caption dropout coin (text-conditioned families)
  Latent = 5,        // sampling: the starting latent x_T of an image
  ClassLabel = 6,    // sampling: the class label of an image (when drawn at random)
  SamplerNoise = 7,  // sampling: the noise a stochastic sampler (DDPM) adds at reverse step `step`
};

// SplitMix64: advances `state` by the golden-ratio increment and returns the next mixed 64-bit value.
uint64_t splitmix64(uint64_t& state);

// The 64-bit key of one (seed, step, sample, stream); each field goes through a full SplitMix64
// round, so nearby tuples (step 1 sample 0 vs step 0 sample 1) give unrelated keys.
uint64_t rng_key(uint64_t seed, uint64_t step, uint64_t sample, RngStream stream);

// A fresh CPU generator whose Mersenne-Twister state is filled from SplitMix64(key).
at::Generator keyed_generator(uint64_t key);

// Indices first, first+1, ..., first+count-1: the samples of a contiguous shard.
std::vector<int64_t> sample_range(int64_t first, int64_t count);

// The draws of one (seed, step): row i of each result belongs to samples[i] and is the same whatever
// the other entries of `samples` are. `step` is the training step, or the reverse-process step for
// RngStream::SamplerNoise (0 for draws made once per image, such as Latent and ClassLabel).
class KeyedDraws {
 public:
  KeyedDraws(uint64_t seed, uint64_t step) : seed_(seed), step_(step) {}

  // int64 [n]: one integer per sample, uniform in [low, high).
  torch::Tensor randint(RngStream stream, const std::vector<int64_t>& samples, int64_t low, int64_t high) const;
  // [n, shape...] of `dtype` (float32 by default): standard normal.
  torch::Tensor randn(RngStream stream, const std::vector<int64_t>& samples, torch::IntArrayRef shape,
                      torch::ScalarType dtype = torch::kFloat) const;
  // float32 [n], uniform in [0, 1): compare with a dropout probability.
  torch::Tensor rand(RngStream stream, const std::vector<int64_t>& samples) const;

  at::Generator generator(RngStream stream, int64_t sample) const;

 private:
  uint64_t seed_, step_;
};

}  // namespace sdit

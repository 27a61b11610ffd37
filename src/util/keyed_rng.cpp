#include "util/keyed_rng.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/MT19937RNGEngine.h>

#include "util/error.h"

namespace sdit {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

namespace {
// One round of a hash chain: for a fixed h, distinct v give distinct results (xor, then a bijection).
uint64_t absorb(uint64_t h, uint64_t v) {
  uint64_t s = h ^ v;
  return splitmix64(s);
}
}  // namespace

uint64_t rng_key(uint64_t seed, uint64_t step, uint64_t sample, RngStream stream) {
  uint64_t h = 0x73706172736564ull;  // "sparsed": a domain constant, so key(0,0,0,s) is not tiny
  h = absorb(h, seed);
  h = absorb(h, step);
  h = absorb(h, sample);
  return absorb(h, static_cast<uint64_t>(stream));
}

at::Generator keyed_generator(uint64_t key) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(key);
  at::mt19937 engine(key);
  at::mt19937_data_pod pod = engine.data();
  uint64_t s = key;
  for (size_t i = 0; i < pod.state_.size(); i += 2) {
    const uint64_t v = splitmix64(s);
    pod.state_[i] = static_cast<uint32_t>(v);
    if (i + 1 < pod.state_.size()) pod.state_[i + 1] = static_cast<uint32_t>(v >> 32);
  }
  pod.left_ = 1;  // as after init_genrand: the first draw twists the state
  pod.next_ = 0;
  engine.set_data(pod);
  gen.get<at::CPUGeneratorImpl>()->set_engine(engine);
  return gen;
}

std::vector<int64_t> sample_range(int64_t first, int64_t count) {
  if (first < 0 || count < 0) fail("sample_range: negative first ", first, " or count ", count);
  std::vector<int64_t> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[static_cast<size_t>(i)] = first + i;
  return v;
}

at::Generator KeyedDraws::generator(RngStream stream, int64_t sample) const {
  if (sample < 0) fail("keyed draw: negative sample index ", sample);
  return keyed_generator(rng_key(seed_, step_, static_cast<uint64_t>(sample), stream));
}

torch::Tensor KeyedDraws::randint(RngStream stream, const std::vector<int64_t>& samples, int64_t low,
                                  int64_t high) const {
  if (high <= low) fail("keyed randint: empty range [", low, ", ", high, ")");
  auto out = torch::empty({static_cast<int64_t>(samples.size())}, torch::kLong);
  auto a = out.accessor<int64_t, 1>();
  for (size_t i = 0; i < samples.size(); ++i)
    a[static_cast<int64_t>(i)] = torch::randint(low, high, {1}, generator(stream, samples[i]), torch::kLong).item<int64_t>();
  return out;
}

torch::Tensor KeyedDraws::randn(RngStream stream, const std::vector<int64_t>& samples, torch::IntArrayRef shape,
                                torch::ScalarType dtype) const {
  std::vector<int64_t> sizes{static_cast<int64_t>(samples.size())};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  auto out = torch::empty(sizes, torch::TensorOptions().dtype(dtype));
  // Each row is contiguous, so normal_ takes the same code path as torch::randn(shape, gen) would.
  for (size_t i = 0; i < samples.size(); ++i)
    out.select(0, static_cast<int64_t>(i)).normal_(0.0, 1.0, generator(stream, samples[i]));
  return out;
}

torch::Tensor KeyedDraws::rand(RngStream stream, const std::vector<int64_t>& samples) const {
  auto out = torch::empty({static_cast<int64_t>(samples.size())}, torch::kFloat);
  for (size_t i = 0; i < samples.size(); ++i)
    out.select(0, static_cast<int64_t>(i)).uniform_(0.0, 1.0, generator(stream, samples[i]));
  return out;
}

}  // namespace sdit

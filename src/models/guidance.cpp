#include "models/guidance.h"

#include <algorithm>

#include "util/error.h"

namespace sdit {

torch::Tensor forward_with_cfg(const BackboneFn& f, const torch::Tensor& x, const torch::Tensor& t,
                               const torch::Tensor& y, double cfg_scale, int64_t guided_channels,
                               int64_t eps_channels) {
  const int64_t n = x.size(0) / 2;
  if (n * 2 != x.size(0)) fail("classifier-free guidance needs an even batch ([cond; uncond])");
  auto half = x.narrow(0, 0, n);
  auto out = f(torch::cat({half, half}, 0), t, y);
  // DiT's 3 guided channels assume 4 latent channels; a 1-channel pixel model guides what it has.
  const int64_t g = guided_channels < 0 ? eps_channels : std::min(guided_channels, eps_channels);
  auto eps = out.narrow(1, 0, g);
  auto rest = out.narrow(1, g, out.size(1) - g);
  auto cond = eps.narrow(0, 0, n), uncond = eps.narrow(0, n, n);
  auto guided = uncond + cfg_scale * (cond - uncond);
  return torch::cat({torch::cat({guided, guided}, 0), rest}, 1);
}

}  // namespace sdit

#include "models/guidance.h"

#include <algorithm>

#include "util/error.h"

namespace sdit {

torch::Tensor forward_with_cfg(const DenoiseFn& f, const torch::Tensor& x, const torch::Tensor& t,
                               const Conditioning& c, const GuidanceOptions& opt) {
  const int64_t n = x.size(0) / 2;
  if (n * 2 != x.size(0)) fail("classifier-free guidance needs an even batch ([cond; uncond])");
  auto half = x.narrow(0, 0, n);
  auto out = f(torch::cat({half, half}, 0), t, c);
  // DiT's 3 guided channels assume 4 latent channels; a 1-channel pixel model guides what it has.
  const int64_t ax = opt.channel_axis;
  const int64_t g = opt.guided_channels < 0 ? opt.eps_channels : std::min(opt.guided_channels, opt.eps_channels);
  auto eps = out.narrow(ax, 0, g);
  auto rest = out.narrow(ax, g, out.size(ax) - g);
  auto cond = eps.narrow(0, 0, n), uncond = eps.narrow(0, n, n);
  auto guided = uncond + opt.scale * (cond - uncond);
  return torch::cat({torch::cat({guided, guided}, 0), rest}, ax);
}

}  // namespace sdit

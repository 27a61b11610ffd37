#include "cli/sample_dist.h"

#include <functional>
#include <memory>
#include <sstream>

#include "dist/sharded_sampling.h"
#include "util/error.h"
#include "util/keyed_rng.h"
#include "util/strings.h"

namespace sdit::cli {

namespace {

std::string labels_of(const Conditioning& c) {
  if (!c.labels.defined()) return "";
  const auto l = c.labels.to(torch::kCPU).contiguous();
  return join(std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel()));
}

// Everything that decides the images of a per-image run: a resume folder of another request is refused.
std::string request_fingerprint(const RankedSampling& a, const SamplingRequest& req) {
  std::ostringstream os;
  os << a.ckpt << "|seed " << req.seed << "|steps " << req.steps << "|" << req.sampler << "|eta " << req.eta << "|cfg "
     << req.cfg_scale << "/" << req.guided_channels << "|density " << req.density << "|n " << req.samples()
     << "|batch " << req.batch_size << "|labels " << std::hash<std::string>{}(labels_of(req.cond));
  return os.str();
}

}  // namespace

std::string resolve_seed_mode(const std::string& asked, const dist::World& world) {
  if (asked == "auto") return world.is_distributed() ? "per-image" : "reference";
  if (asked == "reference") {
    if (world.is_distributed())
      fail("--seed-mode reference is one process's random stream; across ranks use per-image or dit");
    return asked;
  }
  if (asked != "per-image" && asked != "dit")
    fail("--seed-mode must be auto, reference, per-image or dit (got '", asked, "')");
  return asked;
}

SamplingProgress progress_bars(int64_t runs, bool quiet) {
  auto make_bar = [runs, quiet](int64_t run) {
    const std::string label = runs > 0 ? "sampling " + std::to_string(run + 1) + "/" + std::to_string(runs) : "sampling";
    return std::make_shared<ProgressBar>(label, 0, quiet);
  };
  auto bar = std::make_shared<std::shared_ptr<ProgressBar>>(make_bar(0));
  return [bar, make_bar](int64_t run, int64_t, int64_t step, int64_t total) {
    (*bar)->set_total(total);
    (*bar)->update(step);
    if (step == total) {
      (*bar)->finish();
      *bar = make_bar(run + 1);
    }
  };
}

SamplingResult sample_across_ranks(const RankedSampling& a, Model& model, SamplingRequest& req, const dist::World& world,
                                   const std::string& mode, const Log& log, std::string& resume_dir) {
  dist::ShardedSampling so;
  so.mode = dist::parse_seed_mode(mode);
  if (so.mode == dist::SeedMode::Dit) {
    if (a.labels_given) fail("--seed-mode dit draws the class labels (as sample_ddp.py); drop --class-labels");
    if (a.num_samples <= 0) fail("--seed-mode dit needs --num-samples");
    req.cond = {};
    req.after_noise = {};
    req.num_samples = a.num_samples;
  } else {
    if (req.after_noise) {  // a per-image run draws each image's label from its own key instead
      req.cond.labels = KeyedDraws(static_cast<uint64_t>(req.seed), 0)
                            .randint(RngStream::ClassLabel, sample_range(0, req.samples()), 0, model.latent().num_classes);
      req.after_noise = {};
    }
    if (req.batch_size > 0 && req.batch_size < req.samples()) resume_dir = a.first_output + ".partial";
    so.resume_dir = resume_dir;
    so.fingerprint = request_fingerprint(a, req);
  }
  so.on_message = [&log](const std::string& m) { log.info(m); };
  auto res = dist::sample_sharded(model, req, world, so, progress_bars(0, a.quiet || !world.is_root()));
  if (so.mode == dist::SeedMode::Dit) req.cond = res.cond;
  return res;
}

}  // namespace sdit::cli

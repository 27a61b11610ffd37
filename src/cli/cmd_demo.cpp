// sparsedit demo: the main job on a fresh machine. Samples all ten digits from the shipped MNIST
// DiT and SparseDiT, measures both side by side (ms/step, img/s, GMACs, peak memory) and judges
// their samples with the project's MNIST classifier (class accuracy, MNIST FID).

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "diffusion/density_schedule.h"
#include "diffusion/pipeline.h"
#include "bench/bench.h"
#include "eval/fid.h"
#include "models/mnist_classifier.h"
#include "data/npz.h"
#include "io/image.h"
#include "models/model.h"
#include "data/mnist.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct DemoArgs {
  std::string models = "models", out = "demo", cache_dir, device = "cpu";
  int64_t samples = 200, seed = 0, reps = 3, batch = 50;
  int threads = 0;
  bool quiet = false;
};

// The classifier's batch: 500 images of 32×32 keep its activations small.
constexpr int64_t kClassifierBatch = 500;

struct ModelReport {
  std::string name, file, density;
  Model model;
  SamplingRequest req;
  BenchRow speed;
  double accuracy = 0, fid = 0;
};

// The sampling settings a shipped model recommends (its "sampling" metadata), over sample.py's.
SamplingRequest recommended(const Model& m, const Log& log) {
  SamplingRequest r;
  for (const auto& w : apply_recommended(m, r)) log.info("warning: " + w);
  return r;
}

// A grid of all ten digits, two of each, with the model's recommended settings.
void write_grid(ModelReport& r, const DemoArgs& a, Log& log) {
  SamplingRequest grid = r.req;
  grid.cond.labels = torch::arange(20, torch::kLong).remainder(10);
  auto g = run_sampling(r.model, grid);
  const std::string png = a.out + "/" + (r.model.sparse() ? "mnist-sparsedit" : "mnist-dit") + ".png";
  save_image_grid(g.samples, 10, png,
                  {{"parameters", r.name + "; steps " + grid.steps + "; sampler " + grid.sampler + "; cfg " +
                                      std::to_string(grid.cfg_scale) + "; density " + g.density_description}});
  r.density = g.density_description;
  log.stage("wrote " + png);
}

// Quality: n samples, labels 0..9 in turn, judged by the classifier against the held-out digits.
void judge(ModelReport& r, const DemoArgs& a, MnistClassifier classifier, const FeatureStats& ref_stats,
           Log& log) {
  SamplingRequest q = r.req;
  q.cond.labels = torch::arange(a.samples, torch::kLong).remainder(10);
  q.batch_size = a.batch;
  auto res = run_sampling(r.model, q);
  auto out = run_classifier(classifier, quantize_images(res.samples), kClassifierBatch, torch::kCPU);
  r.accuracy = out.predictions.eq(q.cond.labels).to(torch::kDouble).mean().item<double>();
  r.fid = frechet_distance(feature_stats(out.features.to(torch::kDouble)), ref_stats);
  log.stage(r.name + ": " + std::to_string(a.samples) + " samples judged");
}

// Speed: the benchmark's measurement of one sampling step at the recommended schedule.
void benchmark(ModelReport& r, const DemoArgs& a, const torch::Device& device, Log& log) {
  BenchModelSource src;
  src.name = r.name;
  src.ckpt = r.file;
  BenchCase c;
  c.input_size = r.model.latent().height;
  c.density = !r.req.density.empty() ? r.req.density : r.model.sparse() ? kDefaultDensity : "full";
  c.batch = a.batch;
  c.threads = a.threads > 0 ? a.threads : torch::get_num_threads();
  BenchOptions bo;
  bo.cfg = r.req.cfg_scale != 1.0;
  bo.reps = static_cast<int>(a.reps);
  bo.steps = r.req.steps;
  bo.device = device;
  r.speed = run_bench(src, {c}, bo).at(0);
  log.stage(r.name + ": benchmarked");
}

void print_table(const std::vector<ModelReport>& reports, const DemoArgs& a, const std::string& classifier_path,
                 int64_t held_out) {
  const auto& d = reports[0].speed;
  std::printf("\n| model | density | ms/step (batch %lld%s) | img/s | GMACs/forward | peak memory | speed-up | "
              "class accuracy | MNIST FID |\n|---|---|---|---|---|---|---|---|---|\n",
              (long long)a.batch, d.cfg ? ", CFG" : "");
  for (auto& r : reports) {
    const auto& s = r.speed;
    std::printf("| %s | %s | %.1f ± %.1f | %.1f | %.4f | %.0f MiB | %.2fx | %.1f%% | %.2f |\n", r.name.c_str(),
                s.density.c_str(), s.ms_per_step.mean, s.ms_per_step.sd, s.img_per_s.mean, s.gmacs,
                s.peak_mem_bytes / 1048576.0, d.ms_per_step.mean / s.ms_per_step.mean, 100 * r.accuracy, r.fid);
  }
  std::printf("\nquality: %lld samples per model (labels 0..9 in turn), judged by %s against the %lld held-out "
              "MNIST digits; FID on so few samples is biased high (--samples 1000 for the README's numbers)\n"
              "schedules: DiT %s; SparseDiT %s\nimages: %s/mnist-dit.png, %s/mnist-sparsedit.png\n",
              (long long)a.samples, classifier_path.c_str(), (long long)held_out, reports[0].density.c_str(),
              reports[1].density.c_str(), a.out.c_str(), a.out.c_str());
}

void run_demo(const DemoArgs& a) {
  set_threads(a.threads);
  const auto device = parse_device(a.device);
  Log log(a.quiet);
  std::filesystem::create_directories(a.out);
  const std::string classifier_path = a.models + "/mnist-classifier.safetensors";
  std::vector<ModelReport> reports(2);
  reports[0].name = "DiT";
  reports[0].file = a.models + "/mnist-dit.safetensors";
  reports[1].name = "SparseDiT";
  reports[1].file = a.models + "/mnist-sparsedit.safetensors";
  for (auto& r : reports) {
    if (!std::filesystem::exists(r.file))
      fail("missing ", r.file, ": train the demo models with scripts/train_mnist.sh (about 3 h on 2 cores)");
    r.model = Model::load(r.file);
    r.model.to(device);
    r.req = recommended(r.model, log);
    r.req.seed = a.seed;
    r.req.device = device;
    log.stage("loaded " + r.name + ": " + r.model.describe());
  }
  auto classifier = load_mnist_classifier(classifier_path);
  auto mnist = load_mnist(a.cache_dir.empty() ? default_cache_dir() : a.cache_dir);
  auto ref = run_classifier(classifier, quantize_images(mnist.test_images), kClassifierBatch, torch::kCPU);
  const auto ref_stats = feature_stats(ref.features.to(torch::kDouble));
  log.stage("MNIST held-out digits: " + std::to_string(mnist.test_images.size(0)) + " reference images");
  for (auto& r : reports) {
    write_grid(r, a, log);
    judge(r, a, classifier, ref_stats, log);
    benchmark(r, a, device, log);
  }
  print_table(reports, a, classifier_path, mnist.test_images.size(0));
}

}  // namespace

void register_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  auto* c = app.add_subcommand("demo", "MNIST DiT vs SparseDiT: sample grids, speed table and sample quality");
  c->add_option("--models", a->models, "folder with mnist-dit, mnist-sparsedit and mnist-classifier .safetensors")
      ->capture_default_str();
  c->add_option("-o,--output,--out", a->out, "folder for the sample grids")->capture_default_str();
  c->add_option("--samples", a->samples, "samples per model for accuracy and FID")->capture_default_str();
  c->add_option("--batch-size", a->batch, "images per sampling batch")->capture_default_str();
  c->add_option("--reps", a->reps, "benchmark repetitions")->capture_default_str();
  c->add_option("-s,--seed", a->seed, "random seed")->capture_default_str();
  c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  c->add_option("--device", a->device, "cpu | cuda (sampling and timing; the classifier runs on the CPU)")
      ->capture_default_str();
  c->add_option("--cache-dir", a->cache_dir, "MNIST cache folder (default ~/.cache/sparsedit)");
  c->add_flag("-q,--quiet", a->quiet, "only the table");
  c->callback([a] { run_demo(*a); });
}

}  // namespace sdit::cli

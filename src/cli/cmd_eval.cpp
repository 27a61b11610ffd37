// sparsedit eval: sample quality as the ADM evaluator measures it (FID, improved precision/recall)
// on the features of the project's MNIST classifier (plus the class accuracy of conditional
// samples) or of the FID Inception-v3 (pool3, weights supplied by the user), or between saved
// statistics such as ADM's reference batches.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/eval_inputs.h"
#include "eval/fid.h"
#include "eval/inception.h"
#include "models/mnist_classifier.h"
#include "util/error.h"
#include "util/strings.h"

namespace sdit::cli {

namespace {

struct EvalArgs {
  std::string a, b, ref_stats, features = "mnist", labels, classifier = "models/mnist-classifier.safetensors";
  std::string key, cache_dir, save_stats, device = "cpu", inception;
  int64_t batch = 500, k = 3;
  int threads = 0;
  bool no_pr = false, json = false, quiet = false;
};

// One side of the comparison after feature extraction.
struct Side {
  EvalInput input;
  torch::Tensor features, predictions;  // undefined for statistics inputs
  std::optional<FeatureStats> stats;
};

// The report: one JSON object, and the same as text lines.
struct Report {
  nlohmann::json j;
  std::vector<std::string> lines;
  bool measured = false;
};

void check_args(const EvalArgs& a) {
  if (a.features != "mnist" && a.features != "inception" && a.features != "adm-stats")
    fail("--features ", a.features, ": use mnist (the project's classifier), inception (FID Inception-v3, with "
         "--inception WEIGHTS) or adm-stats (statistics files only)");
  if (a.features == "inception" && a.inception.empty())
    fail("--features inception needs --inception FILE: pytorch-fid's pt_inception-2015-12-05-6726825d.pth");
  if (a.k < 1) fail("--k must be >= 1");
}

// The two sides as given: --a (with --labels), and --b or --ref-stats.
std::pair<Side, std::optional<Side>> load_sides(const EvalArgs& a) {
  Side sa{load_eval_input(a.a, a.key, a.cache_dir), {}, {}, {}};
  std::optional<Side> sb;
  if (!a.b.empty()) sb = Side{load_eval_input(a.b, a.key, a.cache_dir), {}, {}, {}};
  if (!a.ref_stats.empty()) {
    EvalInput in;
    in.source = a.ref_stats;
    in.stats = read_stats_npz(a.ref_stats);
    in.description = "statistics (" + std::to_string(in.stats->mu.size(0)) + "-d) from " + a.ref_stats;
    sb = Side{in, {}, {}, {}};
  }
  if (!a.labels.empty()) {
    if (!sa.input.images.defined()) fail("--labels: '", a.a, "' holds statistics, not images to classify");
    sa.input.labels = parse_labels(a.labels);
    if (sa.input.labels.size(0) != sa.input.images.size(0))
      fail("--labels gives ", sa.input.labels.size(0), " labels for ", sa.input.images.size(0), " images in '", a.a, "'");
  }
  return {std::move(sa), std::move(sb)};
}

// Features (and statistics, predictions) of every side that holds images, from the network asked for.
struct Extractors {
  std::optional<MnistClassifier> clf;
  std::optional<FidInceptionV3> inception;
};

void extract(const EvalArgs& a, Side& s, Extractors& ex, const torch::Device& device, Log& log) {
  if (s.input.stats) {
    s.stats = s.input.stats;
    return;
  }
  if (a.features == "adm-stats")
    fail("--features adm-stats compares statistics files (mu, sigma), but '", s.input.source,
         "' holds images; use --features inception --inception WEIGHTS for Inception-v3 features");
  if (a.features == "inception") {
    if (!ex.inception) {
      ex.inception = load_fid_inception(a.inception);
      log.stage("loaded FID Inception-v3 from " + a.inception);
    }
    // ADM's evaluator runs Inception 64 images at a time; 299x299 activations need no more.
    s.features = inception_features(*ex.inception, s.input.images, std::min<int64_t>(a.batch, 64), device);
    s.stats = feature_stats(s.features);
    log.stage("Inception features of " + s.input.source);
    return;
  }
  if (!ex.clf) {
    ex.clf = load_mnist_classifier(a.classifier);
    log.stage("loaded classifier " + a.classifier + ": " + (*ex.clf)->config().describe());
  }
  auto out = run_classifier(*ex.clf, s.input.images, a.batch, device);
  s.features = out.features;
  s.predictions = out.predictions;
  s.stats = feature_stats(out.features);
  log.stage("features of " + s.input.source);
}

// FID and, between two image sets, improved precision/recall.
void compare(const EvalArgs& a, const Side& sa, const Side& sb, Report& r) {
  double fid = frechet_distance(*sa.stats, *sb.stats);
  if (fid < 0 && fid > -1e-6) fid = 0;  // rounding of a zero distance, not a negative one
  r.j["fid"] = fid;
  r.lines.push_back("FID: " + fmt("%.4f", fid));
  r.measured = true;
  if (a.no_pr || !sa.features.defined() || !sb.features.defined()) return;
  if (sa.features.size(0) <= a.k || sb.features.size(0) <= a.k) {
    r.lines.push_back("precision/recall: skipped (needs more than k=" + std::to_string(a.k) + " images per set)");
    return;
  }
  // The reference set plays ADM's reference batch: precision asks whether samples look real.
  auto pr = precision_recall(sb.features, sa.features, a.k);
  r.j["precision"] = pr.precision;
  r.j["recall"] = pr.recall;
  r.j["k"] = a.k;
  r.lines.push_back("precision: " + fmt("%.4f", pr.precision) + "  recall: " + fmt("%.4f", pr.recall) + "  (k=" +
                    std::to_string(a.k) + ")");
}

void class_accuracy(const Side& sa, const MnistClassifier& clf, Report& r) {
  const int64_t classes = clf->config().classes;
  auto lab = sa.input.labels;
  if (lab.min().item<int64_t>() < 0 || lab.max().item<int64_t>() >= classes)
    fail("labels must lie in [0, ", classes, ") for this classifier; found ", lab.min().item<int64_t>(), "..",
         lab.max().item<int64_t>());
  const int64_t correct = sa.predictions.eq(lab).sum().item<int64_t>(), n = lab.size(0);
  const double acc = static_cast<double>(correct) / static_cast<double>(n);
  r.j["accuracy"] = acc;
  r.j["correct"] = correct;
  r.j["labelled"] = n;
  r.lines.push_back("class accuracy: " + fmt("%.2f%%", 100 * acc) + " (" + std::to_string(correct) + "/" +
                    std::to_string(n) + ")");
  r.measured = true;
}

void run_eval(const EvalArgs& a) {
  check_args(a);
  set_threads(a.threads);
  Log log(a.quiet);
  const auto device = parse_device(a.device);
  auto [sa, sb] = load_sides(a);
  log.stage("loaded " + sa.input.description + (sb ? "; reference: " + sb->input.description : ""));
  Extractors ex;
  extract(a, sa, ex, device, log);
  if (sb) extract(a, *sb, ex, device, log);

  Report r;
  auto side_json = [](const Side& s) {
    nlohmann::json o;
    o["source"] = s.input.source;
    o["images"] = s.input.images.defined() ? nlohmann::json(s.input.images.size(0)) : nlohmann::json(nullptr);
    return o;
  };
  r.j["features"] = a.features;
  r.j["a"] = side_json(sa);
  r.j["b"] = sb ? side_json(*sb) : nlohmann::json(nullptr);
  r.j["fid"] = r.j["precision"] = r.j["recall"] = r.j["accuracy"] = nullptr;
  r.lines.push_back("a: " + sa.input.description);
  if (sb) r.lines.push_back("b: " + sb->input.description);
  if (ex.clf) r.lines.push_back("features: MNIST classifier fc1 (" + std::to_string((*ex.clf)->config().features) + "-d)");
  if (ex.inception) r.lines.push_back("features: FID Inception-v3 pool3 (2048-d, pytorch-fid's port of the TF graph)");
  if (sb) {
    compare(a, sa, *sb, r);
    log.stage("compared the two sets");
  }
  if (sa.input.labels.defined() && !sa.predictions.defined() && !a.labels.empty())
    fail("--labels: class accuracy needs the MNIST classifier (--features mnist)");
  if (sa.input.labels.defined() && sa.predictions.defined()) class_accuracy(sa, *ex.clf, r);
  if (!a.save_stats.empty()) {
    write_stats_npz(a.save_stats, *sa.stats);
    r.lines.push_back("wrote statistics of a to " + a.save_stats);
    r.measured = true;
  }
  if (!r.measured)
    fail("nothing to measure: give a reference (--b / --ref-stats) for FID, labels for class accuracy (--labels, "
         "or embedded in the samples), or --save-stats");
  if (a.json) std::cout << r.j.dump(2) << "\n";
  else
    for (const auto& l : r.lines) std::cout << l << "\n";
}

}  // namespace

void register_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* c = app.add_subcommand("eval", "Sample quality: FID, precision/recall (k-NN), class accuracy");
  c->add_option("--a,--samples", a->a,
                "samples: folder of PNG/JPEG, .safetensors (images/latents in [-1,1] or uint8), ADM .npz (arr_0 "
                "uint8 NHWC, or mu/sigma statistics), or mnist-test / mnist-train")
      ->required();
  auto* ob = c->add_option("--b,--ref", a->b, "reference set, any form --a takes (e.g. mnist-test)");
  auto* os = c->add_option("--ref-stats", a->ref_stats, "reference statistics .npz (mu, sigma; ADM reference batch)");
  ob->excludes(os);
  os->excludes(ob);
  c->add_option("--features", a->features,
                "mnist: penultimate layer of the MNIST classifier; inception: FID Inception-v3 pool3 (needs "
                "--inception); adm-stats: both sides are statistics files")
      ->capture_default_str();
  c->add_option("--labels", a->labels,
                "class labels of --a: a,b,c or a file (.safetensors 'labels'/class_labels, .npz labels/arr_1, text); "
                "default: those embedded in --a")
      ;
  c->add_option("--classifier", a->classifier, "MNIST classifier (train-classifier output)")->capture_default_str();
  c->add_option("--inception", a->inception,
                "FID Inception-v3 weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or safetensors)");
  c->add_option("--key", a->key, "tensor to read from a .safetensors input (default: images, else latents)");
  c->add_option("--cache-dir", a->cache_dir, "MNIST download cache (default: ~/.cache/sparsedit)");
  c->add_option("--save-stats", a->save_stats, "write mu/sigma of --a's features to this .npz (reusable as --ref-stats)");
  c->add_option("--k", a->k, "neighbourhood size for precision/recall")->capture_default_str();
  c->add_flag("--no-pr", a->no_pr, "skip precision/recall");
  c->add_option("--batch-size", a->batch, "images per feature batch (Inception: at most 64)")->capture_default_str();
  c->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  c->add_flag("--json", a->json, "print one JSON object (fid, precision, recall, accuracy; null when not measured)");
  c->add_flag("-q,--quiet", a->quiet, "no progress lines on stderr");
  c->callback([a] { run_eval(*a); });
}

}  // namespace sdit::cli

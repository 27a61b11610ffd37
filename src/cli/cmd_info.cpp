// sparsedit info: what a checkpoint (or a generated PNG) holds.
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "cli/sample_text.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/image.h"
#include "models/registry.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct InfoArgs {
  std::string ckpt, image;
  int64_t num_heads = 0;
  double lewei_scale = 0;
};

void print_checkpoint(const InfoArgs& a) {
  const auto raw = load_checkpoint(a.ckpt);
  const auto sd = native_state_dict(raw);
  std::map<std::string, int64_t> dtypes;
  for (auto& k : sd.keys()) dtypes[std::string(c10::toString(sd.at(k).scalar_type()))] += 1;
  std::cout << "file:        " << a.ckpt << "\n";
  std::cout << "tensors:     " << sd.size() << "\n";
  std::cout << "parameters:  " << sd.numel() << "\n";
  const auto model_tensors = without_training_state(raw).size();
  if (raw.size() != model_tensors)
    std::cout << "train state: " << raw.size() - model_tensors
              << " tensors (optimiser, raw weights, RNG; the model above is the EMA)\n";
  if (sd.metadata.count("source_format")) std::cout << "layout:      " << sd.metadata.at("source_format") << " (renamed)\n";
  std::cout << "dtypes:      ";
  for (auto& [d, n] : dtypes) std::cout << d << " x" << n << " ";
  std::cout << "\n";
  LoadOptions lo;
  if (a.num_heads > 0) lo.num_heads = a.num_heads;
  if (a.lewei_scale > 0) lo.config["lewei_scale"] = a.lewei_scale;
  lo.heads_required = false;  // describe what can be read; the head count may stay unknown
  const ModelSpec spec = [&] {
    try {
      return detect_spec(sd, lo);
    } catch (const Error& e) {
      fail(a.ckpt, ": ", e.what());
    }
  }();
  std::cout << "family:      " << display_name(spec) << "\n";
  for (const auto& [k, v] : family(spec.family).describe(spec)) {
    std::string label = k + ":";
    label.resize(std::max<size_t>(label.size() + 1, 13), ' ');
    std::cout << label << v << "\n";
  }
  if (is_pipeline_folder(a.ckpt)) {  // a whole diffusers pipeline: what `sample --ckpt DIR` takes from it
    std::cout << "pipeline:    model_index.json;";
    for (const char* part : {"transformer", "text_encoder", "tokenizer", "vae"})
      std::cout << " " << part << "/" << (is_directory(a.ckpt + "/" + part) ? "" : " (missing)");
    std::cout << "\n";
  }
  for (auto& [k, v] : sd.metadata) std::cout << "meta " << k << ": " << (v.size() > 300 ? v.substr(0, 300) + "..." : v) << "\n";
}

}  // namespace

void register_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Print what a checkpoint holds (family, config, parameters) or a PNG's parameters");
  cmd->add_option("-m,--ckpt", a->ckpt, "checkpoint: .pt, .safetensors or a diffusers folder");
  cmd->add_option("--image", a->image, "a PNG written by sparsedit: print its generation parameters");
  cmd->add_option("--num-heads", a->num_heads, "head count (cannot be read from shapes)");
  cmd->add_option("--lewei-scale,--interpolation-scale", a->lewei_scale, "PixArt position-embedding scale (not in a .pth)");
  cmd->callback([a] {
    if (a->ckpt.empty() == a->image.empty()) fail("info needs exactly one of --ckpt FILE or --image FILE");
    if (!a->image.empty()) {
      auto text = read_png_text(a->image);
      if (text.empty()) std::cout << a->image << ": no text chunks\n";
      for (auto& [k, v] : text) std::cout << k << ": " << v << "\n";
      return;
    }
    print_checkpoint(*a);
  });
}

}  // namespace sdit::cli

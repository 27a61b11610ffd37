// sparsedit info: what a checkpoint (or a generated PNG) holds.
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include "models/config.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct InfoArgs {
  std::string ckpt, image;
  int64_t num_heads = 0;
};

void print_checkpoint(const InfoArgs& a) {
  const auto raw = load_checkpoint(a.ckpt);
  const auto sd = without_training_state(raw);
  std::map<std::string, int64_t> dtypes;
  for (auto& k : sd.keys()) dtypes[std::string(c10::toString(sd.at(k).scalar_type()))] += 1;
  std::cout << "file:        " << a.ckpt << "\n";
  std::cout << "tensors:     " << sd.size() << "\n";
  std::cout << "parameters:  " << sd.numel() << "\n";
  if (raw.size() != sd.size())
    std::cout << "train state: " << raw.size() - sd.size() << " tensors (optimiser, raw weights, RNG; the model above is the EMA)\n";
  std::cout << "dtypes:      ";
  for (auto& [d, n] : dtypes) std::cout << d << " x" << n << " ";
  std::cout << "\n";
  std::optional<int64_t> heads;
  if (a.num_heads > 0) heads = a.num_heads;
  auto det = detect_from_weights(sd, heads);
  const auto& c = det.config;
  std::cout << "family:      " << (det.family == ModelFamily::SparseDiT ? "SparseDiT" : "DiT") << "\n";
  std::cout << "hidden size: " << c.hidden_size << "\n";
  std::cout << "depth:       " << c.depth << "\n";
  std::cout << "heads:       " << (det.heads_known ? std::to_string(c.num_heads) : "unknown (pass --num-heads)") << "\n";
  std::cout << "patch size:  " << c.patch_size << "\n";
  std::cout << "input:       " << c.in_channels << "x" << c.input_size << "x" << c.input_size << " (" << c.grid()
            << "x" << c.grid() << " = " << c.tokens() << " tokens)\n";
  std::cout << "classes:     " << c.num_classes << "\n";
  std::cout << "learn sigma: " << (c.learn_sigma ? "yes" : "no") << " (" << c.out_channels() << " output channels)\n";
  if (det.family == ModelFamily::SparseDiT) std::cout << "layout:      " << det.layout.str() << "\n";
  for (auto& [k, v] : sd.metadata) std::cout << "meta " << k << ": " << (v.size() > 300 ? v.substr(0, 300) + "..." : v) << "\n";
}

}  // namespace

void register_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Print what a checkpoint holds (family, config, parameters) or a PNG's parameters");
  cmd->add_option("-m,--ckpt", a->ckpt, "checkpoint: .pt, .safetensors or a diffusers folder");
  cmd->add_option("--image", a->image, "a PNG written by sparsedit: print its generation parameters");
  cmd->add_option("--num-heads", a->num_heads, "head count (cannot be read from shapes)");
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

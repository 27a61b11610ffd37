// sparsedit convert: a dense model -> its SparseDiT (docs/method.md §3), or a plain format rewrite
// (.pt <-> .safetensors). Training state (train.*) is never carried over.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/convert.h"
#include "util/error.h"

namespace sdit::cli {

namespace {

struct ConvertArgs {
  std::string from, to, layout;
  bool format_only = false;
  bool diffusers = false;
  bool quiet = false;
  int64_t num_heads = 0;
  double lewei_scale = 0;
};

// --diffusers: a diffusers transformer folder (config.json + diffusion_pytorch_model.safetensors).
void write_diffusers(const ConvertArgs& a, const StateDict& sd, const ModelSpec& spec) {
  const auto& f = family(spec.family);
  if (!f.to_diffusers) fail("convert --diffusers: no diffusers layout is implemented for ", display_name(spec));
  const DiffusersFolder out = f.to_diffusers(sd, spec);
  std::error_code ec;
  std::filesystem::create_directories(a.to, ec);
  if (ec) fail("cannot create '", a.to, "': ", ec.message());
  write_safetensors(a.to + "/diffusion_pytorch_model.safetensors", out.tensors);
  const std::string text = out.config.dump(2) + "\n";
  AtomicFile cfg(a.to + "/config.json");
  cfg.write(text.data(), text.size());
  cfg.commit();
  if (a.quiet) return;
  std::cout << "wrote " << display_name(spec) << " in diffusers' layout to " << a.to << ": " << out.tensors.size()
            << " tensors + config.json\n";
  for (const auto& d : out.dropped) std::cout << "  not in that layout: " << d << "\n";
}

void run_convert(const ConvertArgs& a) {
  auto sd = native_state_dict(load_checkpoint(a.from));
  LoadOptions lo;
  if (a.num_heads > 0) lo.num_heads = a.num_heads;
  if (a.lewei_scale > 0) lo.config["lewei_scale"] = a.lewei_scale;
  lo.heads_required = false;  // a file without a known head count is still converted
  const ModelSpec spec = detect_spec(sd, lo);
  const bool heads_known = spec.config.value("num_heads", int64_t{0}) > 0;
  if (heads_known) sd.metadata["config"] = spec.config.dump();
  sd.metadata["family"] = display_name(spec);
  if (a.diffusers) return write_diffusers(a, sd, spec);
  if (a.format_only || spec.sparse()) {
    if (!a.layout.empty() && spec.sparse())
      fail(a.from, " is already a ", display_name(spec), " (layout ", spec.layout->str(),
           "); --layout applies to dense models");
    save_checkpoint(a.to, sd);
    if (!a.quiet) std::cout << "rewrote " << sd.size() << " tensors to " << a.to << "\n";
    return;
  }
  const int64_t depth = spec.config.value("depth", int64_t{0});
  const auto layout = a.layout.empty() ? default_layout(spec) : SparseLayout::parse(a.layout, depth);
  auto r = convert_dense_to_sparse(sd, spec.config.value("hidden_size", int64_t{0}), depth, layout);
  ModelSpec sparse = spec;
  sparse.layout = layout;
  detect_spec(r.sparse, lo);  // the family refuses layouts it cannot build (Latte: gen/recovery on temporal blocks)
  r.sparse.metadata["family"] = display_name(sparse);
  save_checkpoint(a.to, r.sparse);
  if (a.quiet) return;
  std::cout << "converted " << display_name(spec) << " (depth " << depth << ") to " << display_name(sparse)
            << " layout " << layout.str() << ": " << r.sparse.size() << " tensors, " << r.sparse.numel()
            << " parameters -> " << a.to << "\n";
  std::cout << "new (missing in the dense model), initialised W1 = 0, W2 = I: " << r.missing.size() << "\n";
  for (auto& k : r.missing) std::cout << "  " << k << "\n";
  std::cout << "dense tensors split or dropped (unexpected in the sparse model): " << r.unexpected.size() << "\n";
  for (auto& k : r.unexpected) std::cout << "  " << k << "\n";
}

}  // namespace

void register_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "Convert a dense model into its SparseDiT, or rewrite a checkpoint's format");
  cmd->add_option("--from", a->from, "input checkpoint (.pt, .safetensors, diffusers folder)")->required();
  cmd->add_option("--to", a->to, "output file (.safetensors or .pt)")->required();
  cmd->add_option("--layout", a->layout,
                  "SparseDiT layout P:SxG,N,R,D:T (default: the family's by depth; DiT 28 -> 2:4x1,3,1,1:2, "
                  "24 -> 2:4x1,2,1,1:2, 12 -> 1:2x1,2,1,1:1; Latte keeps sparse-gen and recovery on spatial blocks: "
                  "28 -> 2:4x1,3,1,1:2, 12 -> 2:2x1,1,1,1:2)");
  cmd->add_flag("--format-only", a->format_only, "only rewrite the file in the other format, keep the model as is");
  cmd->add_flag("--diffusers", a->diffusers,
                "write a diffusers transformer folder (--to DIR: config.json + diffusion_pytorch_model.safetensors)");
  cmd->add_option("--num-heads", a->num_heads, "head count to record in the output's metadata");
  cmd->add_option("--lewei-scale,--interpolation-scale", a->lewei_scale,
                  "PixArt position-embedding scale to record (a .pth does not store it)");
  cmd->add_flag("-q,--quiet", a->quiet, "print nothing but errors");
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace sdit::cli

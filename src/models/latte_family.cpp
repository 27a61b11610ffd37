// The Latte family's registry row: config (JSON in Latte's constructor names, presets, detection from
// the tensors), the Backbone adapter, FLOPs (docs/latte.md §5) and the `info` description. The
// DiT-shaped part of the config (widths, depth, heads, patch, classes) is DiT's and reuses its code.
#include <cmath>
#include <regex>

#include "io/json_fields.h"
#include "models/family_util.h"
#include "models/latte.h"
#include "util/error.h"

namespace sdit {

using nlohmann::json;

json LatteConfig::to_json() const {
  json j = dit.to_json();
  j["num_frames"] = num_frames;
  j["extras"] = extras;
  return j;
}

LatteConfig LatteConfig::from_json(const json& j) {
  LatteConfig c;
  c.dit = DiTConfig::from_json(j);
  const JsonFields f(j, "the Latte config");
  f.get("num_frames", c.num_frames);
  f.get("extras", c.extras);
  return c;
}

void LatteConfig::validate() const {
  dit.validate();
  if (dit.depth % 2 != 0) fail("Latte alternates spatial and temporal blocks, so its depth must be even, got ", dit.depth);
  if (num_frames < 1) fail("Latte needs at least one frame, got ", num_frames);
  if (extras == 78)
    fail("Latte with extras 78 (a CLIP text-embedding projection, an experiment no released config uses) is not "
         "supported; extras 1 (unconditional) and 2 (class-conditional) are");
}

LatteConfig latte_preset(const std::string& name) {
  static const std::regex re(R"(Latte-(S|B|L|XL)[/-](2|4|8))");
  std::smatch m;
  if (!std::regex_match(name, m, re)) fail("unknown Latte model '", name, "'");
  LatteConfig c;
  c.dit = dit_preset("DiT-" + m[1].str() + "/" + m[2].str());  // Latte's sizes are DiT's
  return c;
}

namespace {

const torch::Tensor& need(const StateDict& sd, const std::string& key, int64_t dims) {
  return need_tensor(sd, key, dims, "Latte");
}

// What the tensors fix: sizes, frames, conditioning, learned sigma, the trunk's layout and depth.
ModelSpec detect_from_tensors(const StateDict& sd, LatteConfig& c) {
  auto& d = c.dit;
  const auto& xw = need(sd, "x_embedder.proj.weight", 4);
  d.hidden_size = xw.size(0);
  d.in_channels = xw.size(1);
  d.patch_size = xw.size(2);
  const auto& pe = need(sd, "pos_embed", 3);
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pe.size(1)))));
  if (grid * grid != pe.size(1)) fail("pos_embed has ", pe.size(1), " tokens, which is not a square grid");
  d.input_size = grid * d.patch_size;
  const auto& te = need(sd, "temp_embed", 3);
  if (te.size(0) != 1 || te.size(2) != d.hidden_size)
    fail("tensor 'temp_embed' has shape ", shape_str(te.sizes().vec()), ", expected [1, frames, ", d.hidden_size, "]");
  c.num_frames = te.size(1);
  for (const auto& k : sd.keys())
    if (k.rfind("text_embedding_projection.", 0) == 0) c.extras = 78;  // validate() refuses it by name
  if (const auto* y = sd.find("y_embedder.embedding_table.weight")) {
    c.extras = 2;
    d.num_classes = y->size(0) - 1;  // the last row is the null class of guidance
  }
  const int64_t out = need(sd, "final_layer.linear.weight", 2).size(0) / (d.patch_size * d.patch_size);
  d.learn_sigma = out == 2 * d.in_channels;
  ModelSpec spec;
  spec.family = "Latte";
  spec.layout = detect_sparse_layout(sd);
  d.depth = spec.layout ? spec.layout->depth() : count_indexed(sd, "blocks.");
  if (d.depth == 0) fail("not a Latte checkpoint: no 'blocks.N' tensors");
  const std::string first_fc1 = spec.layout ? (spec.layout->poolingformers ? "poolingformer_blocks.0.mlp.fc1.weight"
                                                                            : "dumbbell_blocks.0.token_merge_blocks.0.mlp.fc1.weight")
                                            : "blocks.0.mlp.fc1.weight";
  if (const auto* fc1 = sd.find(first_fc1))
    d.mlp_ratio = static_cast<double>(fc1->size(0)) / static_cast<double>(d.hidden_size);
  return spec;
}

ModelSpec detect(const StateDict& sd, const LoadOptions& opt) {
  LatteConfig c;
  ModelSpec spec = detect_from_tensors(sd, c);
  std::optional<int64_t> file_heads;
  if (const nlohmann::json j = config_metadata(sd); !j.empty()) {
    const LatteConfig meta = LatteConfig::from_json(j);
    check_metadata_size(j, "hidden_size", meta.dit.hidden_size, c.dit.hidden_size);
    check_metadata_size(j, "num_frames", meta.num_frames, c.num_frames);
    if (j.contains("num_heads")) file_heads = meta.dit.num_heads;
    if (!c.class_conditional() && j.contains("num_classes")) c.dit.num_classes = meta.dit.num_classes;
  }
  c.dit.num_heads = resolve_heads(file_heads, c.dit.hidden_size, opt, default_heads(c.dit.hidden_size));
  if (c.dit.num_heads > 0) c.validate();
  if (spec.layout) check_latte_layout(*spec.layout, c.dit.depth);
  spec.config = c.to_json();
  return spec;
}

// The Backbone adapter: labels for a class-conditional model, nothing for an unconditional one.
class LatteBackbone : public Backbone {
 public:
  LatteBackbone(const LatteConfig& cfg, const std::optional<SparseLayout>& layout) : cfg_(cfg), net_(cfg, layout) {}
  torch::nn::Module& module() override { return *net_; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c,
                        const Grid& sparse) override {
    return net_->forward(x, t, cfg_.class_conditional() ? c.labels : torch::Tensor(), sparse);
  }
  Conditioning null_conditioning(const Conditioning& cond) const override {
    Conditioning n;
    if (cfg_.class_conditional()) n.labels = torch::full_like(cond.labels, cfg_.dit.num_classes);
    return n;
  }
  void check_conditioning(const Conditioning& c, int64_t batch) const override {
    if (cfg_.class_conditional()) check_class_labels(c, batch, cfg_.dit.num_classes, "class-conditional Latte");
  }
  void init_weights() override { initialize_latte_weights(*net_); }

 private:
  LatteConfig cfg_;
  Latte net_;
};

LatentSpec latent_of(const LatteConfig& c) {
  LatentSpec l;
  l.channels = c.dit.in_channels;
  l.frames = c.num_frames;
  l.height = l.width = c.dit.input_size;
  l.patch = c.dit.patch_size;
  l.vae_downscale = c.dit.in_channels == 1 || c.dit.in_channels == 3 ? 1 : 8;  // as DiT: pixel-space test models
  l.learn_sigma = c.dit.learn_sigma;
  l.channel_axis = 2;  // (B, F, C, H, W)
  l.cond = c.class_conditional() ? CondKind::ClassLabel : CondKind::None;
  l.num_classes = c.class_conditional() ? c.dit.num_classes : 0;
  return l;
}

// docs/latte.md §5: the DiT terms per block with the attention sequence and the adaLN rows of the
// block's axis: spatial blocks attend over a frame's tokens and modulate every (sample, frame) row,
// temporal blocks attend over the frames and modulate every (sample, location) row.
FlopsReport flops(const ModelSpec& spec, const Grid& dense, const Grid& sparse) {
  const LatteConfig c = LatteConfig::from_json(spec.config);
  if (spec.layout) check_latte_layout(*spec.layout, c.dit.depth);  // a layout this family cannot build
  const double C = static_cast<double>(c.dit.hidden_size), T = static_cast<double>(dense.tokens());
  const double p2 = static_cast<double>(c.dit.patch_size * c.dit.patch_size);
  auto spatial = [](const BlockSlot& s) { return latte_block_axis(s.index) == BlockAxis::Spatial; };
  BlockCosts k;
  k.hidden = C;
  k.mlp_hidden = std::floor(C * c.dit.mlp_ratio);
  k.modulation = 6 * C * C;
  k.sequence = [=](const BlockSlot& s, const Grid& g) {
    return static_cast<double>(spatial(s) ? g.per_frame() : g.frames);
  };
  k.modulation_rows = [=](const BlockSlot& s, const Grid& g) {
    return static_cast<double>(spatial(s) ? g.frames : g.per_frame());
  };
  FlopsSegment embed{"embedders", static_cast<double>(c.dit.in_channels) * p2 * C * T + 256 * C + C * C, 0};
  FlopsSegment head{"final",
                    p2 * static_cast<double>(c.dit.out_channels()) * C * T + 2 * C * C * static_cast<double>(dense.frames),
                    0};
  return make_report(embed, trunk_flops(k, c.dit.depth, spec.layout ? &*spec.layout : nullptr, dense, sparse), head);
}

// DiT's overrides on the DiT-shaped part, then frames and the conditioning: training data with more
// than one class makes a class-conditional model (extras 2), a single class an unconditional one.
ModelSpec apply_overrides(ModelSpec spec, const SpecOverrides& o) {
  LatteConfig c = LatteConfig::from_json(spec.config);
  SpecOverrides base = o;
  base.frames.reset();
  c.dit = DiTConfig::from_json(family("DiT").apply_overrides(ModelSpec{"DiT", c.dit.to_json(), std::nullopt}, base).config);
  if (o.frames) c.num_frames = *o.frames;
  if (o.num_classes) c.extras = *o.num_classes > 1 ? 2 : 1;
  c.validate();
  if (spec.layout) check_latte_layout(*spec.layout, c.dit.depth);
  spec.config = c.to_json();
  return spec;
}

std::vector<std::pair<std::string, std::string>> describe(const ModelSpec& spec) {
  const LatteConfig c = LatteConfig::from_json(spec.config);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [key, value] : family("DiT").describe(ModelSpec{"DiT", c.dit.to_json(), spec.layout})) {
    if (key == "classes") {
      out.emplace_back("conditioning", c.class_conditional() ? value + " classes (extras 2)" : "unconditional (extras 1)");
      continue;
    }
    out.emplace_back(key, value);
    if (key == "input") out.emplace_back("frames", std::to_string(c.num_frames) + " (even blocks spatial, odd temporal)");
  }
  return out;
}

}  // namespace

Family latte_family() {
  Family f;
  f.name = "Latte";
  f.sparse_name = "SparseDiT-Latte";
  f.presets = "Latte-S/2 Latte-S/4 Latte-S/8 Latte-B/2 Latte-B/4 Latte-B/8 Latte-L/2 Latte-L/4 Latte-L/8 "
              "Latte-XL/2 Latte-XL/4 Latte-XL/8";
  // DiT's tensors plus temp_embed: must be asked before DiT, whose test would accept a class-conditional Latte.
  f.recognizes = [](const StateDict& sd) {
    return sd.contains("temp_embed") && sd.contains("x_embedder.proj.weight") && sd.contains("pos_embed");
  };
  f.from_foreign = [](const StateDict&) -> std::optional<StateDict> { return std::nullopt; };
  f.detect = detect;
  f.preset = [](const std::string& name) -> std::optional<ModelSpec> {
    static const std::regex re(R"(Latte-(S|B|L|XL)[/-](2|4|8))");
    if (!std::regex_match(name, re)) return std::nullopt;
    return ModelSpec{"Latte", latte_preset(name).to_json(), std::nullopt};
  };
  f.apply_overrides = apply_overrides;
  f.build = [](const ModelSpec& s) -> std::unique_ptr<Backbone> {
    return std::make_unique<LatteBackbone>(LatteConfig::from_json(s.config), s.layout);
  };
  f.latent = [](const ModelSpec& s) { return latent_of(LatteConfig::from_json(s.config)); };
  f.flops = flops;
  f.describe = describe;
  f.default_layout = [](const ModelSpec& s) { return latte_default_layout(s.config.value("depth", int64_t{0})); };
  // sample/sample.py: UCF101 guides with 7.0 on all 4 eps channels; labels drawn with randint after z.
  f.sampling_defaults = [](const ModelSpec&) {
    SamplingDefaults d;
    d.cfg_scale = 7.0;
    d.guided_channels = -1;
    d.class_labels = "random";
    d.labels_after_noise = true;
    return d;
  };
  return f;
}

}  // namespace sdit

// The DiT family's registry row: config (JSON, presets, detection from the tensors), the Backbone
// adapter, FLOPs and the `info` description.
#include <array>
#include <cmath>
#include <map>
#include <regex>
#include <sstream>

#include "io/json_fields.h"
#include "models/dit.h"
#include "models/family_util.h"
#include "util/error.h"

namespace sdit {

using nlohmann::json;

json DiTConfig::to_json() const {
  return {{"input_size", input_size}, {"patch_size", patch_size}, {"in_channels", in_channels},
          {"hidden_size", hidden_size}, {"depth", depth},          {"num_heads", num_heads},
          {"num_classes", num_classes}, {"learn_sigma", learn_sigma}, {"mlp_ratio", mlp_ratio}};
}

DiTConfig DiTConfig::from_json(const json& j) {
  const JsonFields f(j, "the DiT config");
  DiTConfig c;
  for (auto [key, dst] : {std::pair{"input_size", &c.input_size}, {"patch_size", &c.patch_size},
                          {"in_channels", &c.in_channels}, {"hidden_size", &c.hidden_size}, {"depth", &c.depth},
                          {"num_heads", &c.num_heads}, {"num_classes", &c.num_classes}})
    f.get(key, *dst);
  f.get("learn_sigma", c.learn_sigma);
  f.get("mlp_ratio", c.mlp_ratio);
  return c;
}

void DiTConfig::validate() const {
  if (hidden_size <= 0 || num_heads <= 0 || hidden_size % num_heads != 0)
    fail("hidden size ", hidden_size, " is not divisible by ", num_heads, " heads");
  if (hidden_size % 4 != 0) fail("hidden size ", hidden_size, " must be divisible by 4 (sin-cos position embedding)");
  if (patch_size <= 0 || input_size <= 0 || input_size % patch_size != 0)
    fail("input size ", input_size, " is not a multiple of patch size ", patch_size);
  if (depth <= 0 || in_channels <= 0 || num_classes <= 0) fail("depth, channels and classes must be positive");
  if (!(mlp_ratio > 0)) fail("mlp_ratio must be positive");
}

DiTConfig dit_preset(const std::string& name) {
  static const std::map<std::string, std::array<int64_t, 3>> sizes = {
      {"S", {384, 12, 6}}, {"B", {768, 12, 12}}, {"L", {1024, 24, 16}}, {"XL", {1152, 28, 16}}};
  std::smatch m;
  static const std::regex re(R"(DiT-(S|B|L|XL)[/-](2|4|8))");
  if (!std::regex_match(name, m, re)) fail("unknown DiT model '", name, "'");
  const auto& s = sizes.at(m[1]);
  DiTConfig c;
  c.hidden_size = s[0];
  c.depth = s[1];
  c.num_heads = s[2];
  c.patch_size = std::stoll(m[2]);
  return c;
}

std::optional<int64_t> default_heads(int64_t hidden) {
  switch (hidden) {
    case 384: return 6;
    case 768: return 12;
    case 1024: return 16;
    case 1152: return 16;
    default: return std::nullopt;
  }
}

namespace {

const torch::Tensor& need(const StateDict& sd, const std::string& key, int64_t dims) {
  return need_tensor(sd, key, dims, "DiT");
}

ModelSpec detect(const StateDict& sd, const LoadOptions& opt) {
  DiTConfig c;
  const auto& xw = need(sd, "x_embedder.proj.weight", 4);
  c.hidden_size = xw.size(0);
  c.in_channels = xw.size(1);
  c.patch_size = xw.size(2);
  const auto& pe = need(sd, "pos_embed", 3);
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pe.size(1)))));
  if (grid * grid != pe.size(1)) fail("pos_embed has ", pe.size(1), " tokens, which is not a square grid");
  c.input_size = grid * c.patch_size;
  c.num_classes = need(sd, "y_embedder.embedding_table.weight", 2).size(0) - 1;
  const int64_t out = need(sd, "final_layer.linear.weight", 2).size(0) / (c.patch_size * c.patch_size);
  c.learn_sigma = out == 2 * c.in_channels;
  ModelSpec spec;
  spec.family = "DiT";
  spec.layout = detect_sparse_layout(sd);
  c.depth = spec.layout ? spec.layout->depth() : count_indexed(sd, "blocks.");
  if (c.depth == 0) fail("not a DiT checkpoint: no 'blocks.N' tensors");
  const std::string first_fc1 = spec.layout ? "poolingformer_blocks.0.mlp.fc1.weight" : "blocks.0.mlp.fc1.weight";
  if (const auto* fc1 = sd.find(first_fc1))
    c.mlp_ratio = static_cast<double>(fc1->size(0)) / static_cast<double>(c.hidden_size);

  std::optional<int64_t> file_heads;
  const json j = config_metadata(sd);
  if (!j.empty()) {
    const DiTConfig meta = DiTConfig::from_json(j);
    check_metadata_size(j, "hidden_size", meta.hidden_size, c.hidden_size);
    if (j.contains("num_heads")) file_heads = meta.num_heads;
  }
  c.num_heads = resolve_heads(file_heads, c.hidden_size, opt, default_heads(c.hidden_size));
  if (c.num_heads > 0) c.validate();
  spec.config = c.to_json();
  return spec;
}

// The Backbone adapter: labels in, the null class for guidance.
class DiTBackbone : public Backbone {
 public:
  DiTBackbone(const DiTConfig& cfg, const std::optional<SparseLayout>& layout) : cfg_(cfg), net_(cfg, layout) {}
  torch::nn::Module& module() override { return *net_; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c,
                        const Grid& sparse) override {
    return net_->forward(x, t, c.labels, sparse);
  }
  Conditioning null_conditioning(const Conditioning& cond) const override {
    Conditioning n;
    n.labels = torch::full_like(cond.labels, cfg_.num_classes);
    return n;
  }
  void check_conditioning(const Conditioning& c, int64_t batch) const override {
    check_class_labels(c, batch, cfg_.num_classes, "DiT");
  }
  void init_weights() override { initialize_dit_weights(*net_); }

 private:
  DiTConfig cfg_;
  DiT net_;
};

LatentSpec latent_of(const DiTConfig& c) {
  LatentSpec l;
  l.channels = c.in_channels;
  l.height = l.width = c.input_size;
  l.patch = c.patch_size;
  // Pixel-space models (1 or 3 channels: MNIST, small experiments) need no VAE.
  l.vae_downscale = c.in_channels == 1 || c.in_channels == 3 ? 1 : 8;
  l.learn_sigma = c.learn_sigma;
  l.cond = CondKind::ClassLabel;
  l.num_classes = c.num_classes;
  return l;
}

FlopsReport flops(const ModelSpec& spec, const Grid& dense, const Grid& sparse) {
  const DiTConfig c = DiTConfig::from_json(spec.config);
  const double C = static_cast<double>(c.hidden_size), N = static_cast<double>(dense.tokens());
  const double p2 = static_cast<double>(c.patch_size * c.patch_size);
  BlockCosts k;
  k.hidden = C;
  k.mlp_hidden = std::floor(C * c.mlp_ratio);  // DiT builds the MLP with int(hidden_size * mlp_ratio) units
  k.modulation = 6 * C * C;
  // Patch embedding and the timestep MLP (256 sinusoidal frequencies -> C -> C); the label lookup is free.
  FlopsSegment embed{"embedders", static_cast<double>(c.in_channels) * p2 * C * N + 256 * C + C * C, 0};
  FlopsSegment head{"final", p2 * static_cast<double>(c.out_channels()) * C * N + 2 * C * C, 0};
  return make_report(embed, trunk_flops(k, c.depth, spec.layout ? &*spec.layout : nullptr, dense, sparse), head);
}

ModelSpec apply_overrides(ModelSpec spec, const SpecOverrides& o) {
  DiTConfig c = DiTConfig::from_json(spec.config);
  override_trunk_sizes(o, c.hidden_size, c.depth, c.patch_size, c.num_heads, c.in_channels, default_heads);
  if (o.frames && *o.frames != 1) fail("a DiT generates single images; ", *o.frames, " frames need a video model (Latte)");
  if (o.num_classes) c.num_classes = *o.num_classes;
  if (auto side = square_side_override(o, c.input_size, "a DiT takes square inputs")) c.input_size = *side;
  c.validate();
  spec.config = c.to_json();
  return spec;
}

std::vector<std::pair<std::string, std::string>> describe(const ModelSpec& spec) {
  const DiTConfig c = DiTConfig::from_json(spec.config);
  std::vector<std::pair<std::string, std::string>> d = {
      {"hidden size", std::to_string(c.hidden_size)},
      {"depth", std::to_string(c.depth)},
      {"heads", c.num_heads > 0 ? std::to_string(c.num_heads) : "unknown (pass --num-heads)"},
      {"patch size", std::to_string(c.patch_size)},
      {"input", std::to_string(c.in_channels) + "x" + std::to_string(c.input_size) + "x" + std::to_string(c.input_size) +
                    " (" + std::to_string(c.grid()) + "x" + std::to_string(c.grid()) + " = " +
                    std::to_string(c.tokens()) + " tokens)"},
      {"classes", std::to_string(c.num_classes)},
      {"learn sigma", std::string(c.learn_sigma ? "yes" : "no") + " (" + std::to_string(c.out_channels()) +
                          " output channels)"}};
  if (c.mlp_ratio != 4.0) d.emplace_back("mlp ratio", std::to_string(c.mlp_ratio));
  if (spec.layout) d.emplace_back("layout", spec.layout->str());
  return d;
}

}  // namespace

FlopsReport dense_flops(const DiTConfig& cfg) {
  cfg.validate();
  return flops(ModelSpec{"DiT", cfg.to_json(), std::nullopt}, square_grid(cfg.grid()), square_grid(cfg.grid()));
}

FlopsReport sparse_flops(const DiTConfig& cfg, const SparseLayout& layout, int64_t side) {
  cfg.validate();
  if (side < 1 || side > cfg.grid()) fail("flops: sparse grid side ", side, " is outside [1, ", cfg.grid(), "]");
  return flops(ModelSpec{"DiT", cfg.to_json(), layout}, square_grid(cfg.grid()), square_grid(side));
}

Family dit_family() {
  Family f;
  f.name = "DiT";
  f.sparse_name = "SparseDiT";
  f.presets = "DiT-S/2 DiT-S/4 DiT-S/8 DiT-B/2 DiT-B/4 DiT-B/8 DiT-L/2 DiT-L/4 DiT-L/8 DiT-XL/2 DiT-XL/4 DiT-XL/8";
  f.recognizes = [](const StateDict& sd) {
    return sd.contains("x_embedder.proj.weight") && sd.contains("y_embedder.embedding_table.weight") &&
           sd.contains("pos_embed");
  };
  f.from_foreign = [](const StateDict& sd) -> std::optional<StateDict> {
    if (!is_diffusers_dit(sd)) return std::nullopt;
    auto it = sd.metadata.find("diffusers_config");
    auto src = sd.metadata.find("source_file");
    return convert_diffusers_dit(sd, it == sd.metadata.end() ? "" : it->second,
                                 src == sd.metadata.end() ? "diffusers folder" : src->second);
  };
  f.detect = detect;
  f.preset = [](const std::string& name) -> std::optional<ModelSpec> {
    static const std::regex re(R"(DiT-(S|B|L|XL)[/-](2|4|8))");
    if (!std::regex_match(name, re)) return std::nullopt;
    return ModelSpec{"DiT", dit_preset(name).to_json(), std::nullopt};
  };
  f.apply_overrides = apply_overrides;
  f.build = [](const ModelSpec& s) -> std::unique_ptr<Backbone> {
    return std::make_unique<DiTBackbone>(DiTConfig::from_json(s.config), s.layout);
  };
  f.latent = [](const ModelSpec& s) { return latent_of(DiTConfig::from_json(s.config)); };
  f.flops = flops;
  f.describe = describe;
  return f;
}

}  // namespace sdit

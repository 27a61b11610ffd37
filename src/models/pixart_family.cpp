// The PixArt family's registry row: config (JSON, presets, detection from the tensors), the
// Backbone adapter (caption features in, the learned null caption for guidance), FLOPs, `info`.
#include <cmath>
#include <regex>

#include "io/json_fields.h"
#include "models/family_util.h"
#include "models/pixart.h"
#include "util/error.h"

namespace sdit {

using nlohmann::json;

json PixArtConfig::to_json() const {
  return {{"input_size", input_size},
          {"patch_size", patch_size},
          {"in_channels", in_channels},
          {"hidden_size", hidden_size},
          {"depth", depth},
          {"num_heads", num_heads},
          {"mlp_ratio", mlp_ratio},
          {"caption_channels", caption_channels},
          {"model_max_length", model_max_length},
          {"lewei_scale", lewei_scale},
          {"learn_sigma", learn_sigma},
          {"micro_conditions", micro_conditions},
          {"null_caption", null_caption},
          {"class_dropout_prob", class_dropout_prob}};
}

PixArtConfig PixArtConfig::from_json(const json& j) {
  const JsonFields f(j, "the PixArt config");
  PixArtConfig c;
  for (auto [key, dst] : {std::pair{"input_size", &c.input_size}, {"patch_size", &c.patch_size},
                          {"in_channels", &c.in_channels}, {"hidden_size", &c.hidden_size}, {"depth", &c.depth},
                          {"num_heads", &c.num_heads}, {"caption_channels", &c.caption_channels},
                          {"model_max_length", &c.model_max_length}})
    f.get(key, *dst);
  for (auto [key, dst] : {std::pair{"mlp_ratio", &c.mlp_ratio}, {"lewei_scale", &c.lewei_scale},
                          {"class_dropout_prob", &c.class_dropout_prob}})
    f.get(key, *dst);
  f.get("learn_sigma", c.learn_sigma);
  f.get("micro_conditions", c.micro_conditions);
  f.get("null_caption", c.null_caption);
  return c;
}

void PixArtConfig::validate() const {
  if (hidden_size <= 0 || num_heads <= 0 || hidden_size % num_heads != 0)
    fail("hidden size ", hidden_size, " is not divisible by ", num_heads, " heads");
  if (hidden_size % 4 != 0) fail("hidden size ", hidden_size, " must be divisible by 4 (sin-cos position embedding)");
  if (micro_conditions && hidden_size % 3 != 0)
    fail("hidden size ", hidden_size, " must be divisible by 3 for PixArt-MS's size embeddings");
  if (patch_size <= 0 || input_size <= 0 || input_size % patch_size != 0)
    fail("input size ", input_size, " is not a multiple of patch size ", patch_size);
  if (depth <= 0 || in_channels <= 0 || caption_channels <= 0 || model_max_length <= 0)
    fail("depth, channels, caption channels and caption length must be positive");
  if (!(mlp_ratio > 0)) fail("mlp_ratio must be positive");
  if (!(lewei_scale > 0) || !std::isfinite(lewei_scale)) fail("lewei_scale must be positive, got ", lewei_scale);
  if (!(class_dropout_prob >= 0 && class_dropout_prob <= 1)) fail("class_dropout_prob must be in [0, 1]");
}

double default_lewei_scale(int64_t input_size) { return static_cast<double>(std::max<int64_t>(input_size / 64, 1)); }

namespace {

const std::regex& preset_re() {
  static const std::regex re(R"(PixArt-(?:alpha-)?XL[/-]2)", std::regex::icase);
  return re;
}

std::optional<int64_t> default_heads(int64_t hidden) {
  if (hidden == 1152) return 16;  // every released PixArt-α
  return std::nullopt;
}

// A fresh model's size decides what the released model of that size is: 1024 px is PixArt-MS.
void set_size(PixArtConfig& c, int64_t side) {
  c.input_size = side;
  c.lewei_scale = default_lewei_scale(side);
  c.micro_conditions = side == 128;
}

}  // namespace

PixArtConfig pixart_preset(const std::string& name, int64_t latent_side) {
  if (!std::regex_match(name, preset_re())) fail("unknown PixArt model '", name, "' (PixArt-XL/2)");
  PixArtConfig c;  // the defaults are XL/2: C 1152, depth 28, 16 heads, T5-XXL captions of 120 tokens
  set_size(c, latent_side);
  return c;
}

namespace {

double lewei_from(const json& meta, const LoadOptions& opt, int64_t input_size) {
  std::optional<double> file, flag;
  if (meta.contains("lewei_scale") && meta["lewei_scale"].is_number()) file = meta["lewei_scale"].get<double>();
  if (opt.config.contains("lewei_scale")) {
    if (!opt.config["lewei_scale"].is_number()) fail("--lewei-scale must be a number");
    flag = opt.config["lewei_scale"].get<double>();
  }
  if (file && flag && *file != *flag)
    fail("--lewei-scale ", *flag, " contradicts the checkpoint's config metadata (", *file, ")");
  return file ? *file : flag ? *flag : default_lewei_scale(input_size);
}

ModelSpec detect(const StateDict& sd, const LoadOptions& opt) {
  const json meta = config_metadata(sd);
  PixArtConfig c = meta.empty() ? PixArtConfig{} : PixArtConfig::from_json(meta);
  const auto& xw = need_tensor(sd, "x_embedder.proj.weight", 4, "PixArt");
  c.hidden_size = xw.size(0);
  c.in_channels = xw.size(1);
  c.patch_size = xw.size(2);
  const auto& fc1 = need_tensor(sd, "y_embedder.y_proj.fc1.weight", 2, "PixArt");
  c.caption_channels = fc1.size(1);
  const auto* null_y = sd.find("y_embedder.y_embedding");
  c.null_caption = null_y != nullptr;
  if (null_y) {
    if (null_y->dim() != 2 || null_y->size(1) != c.caption_channels)
      fail("y_embedder.y_embedding has shape ", shape_str(null_y->sizes().vec()), ", expected [L, ", c.caption_channels,
           "]");
    c.model_max_length = null_y->size(0);
  }
  c.micro_conditions = sd.contains("csize_embedder.mlp.0.weight");
  ModelSpec spec;
  spec.family = "PixArt";
  spec.layout = detect_sparse_layout(sd);
  c.depth = spec.layout ? spec.layout->depth() : count_indexed(sd, "blocks.");
  if (c.depth == 0) fail("not a PixArt checkpoint: no 'blocks.N' tensors");
  const std::string first = spec.layout ? "poolingformer_blocks.0." : "blocks.0.";
  if (const auto* m = sd.find(first + "mlp.fc1.weight"))
    c.mlp_ratio = static_cast<double>(m->size(0)) / static_cast<double>(c.hidden_size);
  const int64_t out = need_tensor(sd, "final_layer.linear.weight", 2, "PixArt").size(0) / (c.patch_size * c.patch_size);
  c.learn_sigma = out == 2 * c.in_channels;
  if (const auto* pe = sd.find("pos_embed")) {
    const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pe->size(1)))));
    if (pe->dim() != 3 || grid * grid != pe->size(1))
      fail("pos_embed has shape ", shape_str(pe->sizes().vec()), ", which is not a square token grid");
    c.input_size = grid * c.patch_size;
  } else if (!meta.contains("input_size")) {
    fail("PixArt checkpoint without pos_embed or config metadata: its training size (base_size) is unknown");
  }
  c.lewei_scale = lewei_from(meta, opt, c.input_size);
  std::optional<int64_t> file_heads;
  if (meta.contains("num_heads")) file_heads = c.num_heads;
  c.num_heads = resolve_heads(file_heads, c.hidden_size, opt, default_heads(c.hidden_size));
  if (c.num_heads > 0) c.validate();
  spec.config = c.to_json();
  return spec;
}

// The Backbone adapter: caption features in; the learned null caption with the prompt's mask out.
class PixArtBackbone : public Backbone {
 public:
  PixArtBackbone(const PixArtConfig& cfg, const std::optional<SparseLayout>& layout) : cfg_(cfg), net_(cfg, layout) {}
  torch::nn::Module& module() override { return *net_; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c,
                        const Grid& sparse) override {
    return net_->forward(x, t, c, sparse);
  }
  Conditioning null_conditioning(const Conditioning& cond) const override {
    if (!cfg_.null_caption)
      fail("this PixArt has no learned null caption (a diffusers folder drops y_embedding; its pipeline encodes "
           "the empty prompt with T5): give an unconditional caption (uncond_embs, or -n \"\")");
    if (!cond.context.defined()) fail("PixArt: no caption features to pair the null caption with");
    const auto& y = net_->y_embedder->y_embedding;
    const int64_t B = cond.context.size(0), L = cond.context.size(-2);
    if (L != y.size(0))
      fail("the captions have ", L, " tokens but the learned null caption has ", y.size(0));
    Conditioning n = cond;  // the prompt's mask and micro-conditions, as PixArt's samplers pair them
    auto null_y = y.to(cond.context.device(), cond.context.scalar_type()).unsqueeze(0).expand({B, L, y.size(1)});
    n.context = cond.context.dim() == 4 ? null_y.unsqueeze(1).contiguous() : null_y.contiguous();
    return n;
  }
  void check_conditioning(const Conditioning& c, int64_t batch) const override {
    if (!c.context.defined()) fail("PixArt needs caption features (T5 last_hidden_state) for every sample");
    const auto y = c.context.dim() == 4 ? c.context.squeeze(1) : c.context;
    if (y.dim() != 3 || y.size(0) != batch || y.size(2) != cfg_.caption_channels)
      fail("caption features have shape ", shape_str(c.context.sizes().vec()), ", expected [", batch, ", L, ",
           cfg_.caption_channels, "]");
    if (c.context_mask.defined()) {
      if (c.context_mask.dim() != 2 || c.context_mask.size(0) != batch || c.context_mask.size(1) != y.size(1))
        fail("caption mask has shape ", shape_str(c.context_mask.sizes().vec()), ", expected [", batch, ", ",
             y.size(1), "]");
      // An empty key block is undefined in the reference (xformers: NaN); T5 masks always keep EOS.
      const auto valid = c.context_mask.ne(0).sum(1);
      if (batch > 0 && valid.min().item<int64_t>() == 0)
        fail("caption ", valid.eq(0).nonzero()[0][0].item<int64_t>(), " has no valid token in its mask");
    }
    if (!cfg_.micro_conditions) return;
    auto rows_ok = [&](const torch::Tensor& t, int64_t cols) {
      return t.defined() && t.dim() == 2 && t.size(1) == cols && (t.size(0) == batch || t.size(0) == 1);
    };
    if (!rows_ok(c.img_hw, 2) || !rows_ok(c.aspect_ratio, 1))
      fail("PixArt-MS needs img_hw (", batch, " or 1 rows of [height, width] pixels) and aspect_ratio (rows of 1)");
  }
  void init_weights() override { initialize_pixart_weights(*net_); }

 private:
  PixArtConfig cfg_;
  PixArt net_;
};

LatentSpec latent_of(const PixArtConfig& c) {
  LatentSpec l;
  l.channels = c.in_channels;
  l.height = l.width = c.input_size;
  l.patch = c.patch_size;
  l.fixed_size = !c.micro_conditions;
  l.vae_downscale = 8;
  l.learn_sigma = c.learn_sigma;
  l.cond = CondKind::Text;
  l.context_len = c.model_max_length;
  l.context_dim = c.caption_channels;
  l.size_conditions = c.micro_conditions;
  return l;
}

// docs/pixart.md §8: DiT's block terms plus the cross-attention (q and proj on the block's tokens,
// K/V on the L caption tokens, L keys per query); adaLN-single costs 6C² once, not per block.
FlopsReport flops(const ModelSpec& spec, const Grid& dense, const Grid& sparse) {
  const PixArtConfig c = PixArtConfig::from_json(spec.config);
  const double C = static_cast<double>(c.hidden_size), N = static_cast<double>(dense.tokens());
  const double L = static_cast<double>(c.model_max_length), Cc = static_cast<double>(c.caption_channels);
  const double p2 = static_cast<double>(c.patch_size * c.patch_size);
  BlockCosts k;
  k.hidden = C;
  k.mlp_hidden = static_cast<double>(c.mlp_hidden());
  k.modulation = 0;
  k.extra_per_token = 2 * C * C + 2 * L * C;
  k.extra_fixed = 2 * C * C * L;
  double embed = static_cast<double>(c.in_channels) * p2 * C * N  // patch embedding
                 + Cc * C * L + C * C * L                         // caption projection
                 + 256 * C + C * C + 6 * C * C;                   // t_embedder and t_block
  if (c.micro_conditions) {
    const double S = static_cast<double>(c.size_emb_dim());
    embed += 3 * (256 * S + S * S);  // h, w and the aspect ratio
  }
  FlopsSegment head{"final", p2 * static_cast<double>(c.out_channels()) * C * N, 0};
  return make_report({"embedders", embed, 0},
                     trunk_flops(k, c.depth, spec.layout ? &*spec.layout : nullptr, dense, sparse), head);
}

ModelSpec apply_overrides(ModelSpec spec, const SpecOverrides& o) {
  PixArtConfig c = PixArtConfig::from_json(spec.config);
  override_trunk_sizes(o, c.hidden_size, c.depth, c.patch_size, c.num_heads, c.in_channels, default_heads);
  // Class labels (o.num_classes) do not enter a caption-conditioned model.
  if (o.context_len) c.model_max_length = *o.context_len;
  if (o.context_dim) c.caption_channels = *o.context_dim;
  const auto side = square_side_override(o, c.input_size, "a PixArt's training size is square (PixArt-MS samples other sizes)");
  if (side && *side != c.input_size) set_size(c, *side);
  c.validate();
  spec.config = c.to_json();
  return spec;
}

std::string number(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::vector<std::pair<std::string, std::string>> describe(const ModelSpec& spec) {
  const PixArtConfig c = PixArtConfig::from_json(spec.config);
  const int64_t g = c.base_size();
  std::vector<std::pair<std::string, std::string>> d = {
      {"class", c.micro_conditions ? "PixArtMS (micro-conditions img_hw, aspect_ratio)" : "PixArt"},
      {"hidden size", std::to_string(c.hidden_size)},
      {"depth", std::to_string(c.depth)},
      {"heads", c.num_heads > 0 ? std::to_string(c.num_heads) : "unknown (pass --num-heads)"},
      {"patch size", std::to_string(c.patch_size)},
      {"input", std::to_string(c.in_channels) + "x" + std::to_string(c.input_size) + "x" +
                    std::to_string(c.input_size) + " (" + std::to_string(g) + "x" + std::to_string(g) + " = " +
                    std::to_string(g * g) + " tokens)" + (c.micro_conditions ? ", or any multiple of the patch" : "")},
      {"lewei scale", number(c.lewei_scale)},
      {"captions", std::to_string(c.model_max_length) + " x " + std::to_string(c.caption_channels)},
      {"null caption", c.null_caption ? "learned" : "none (diffusers layout: T5 of the negative prompt)"},
      {"learn sigma", std::string(c.learn_sigma ? "yes" : "no") + " (" + std::to_string(c.out_channels()) +
                          " output channels)"}};
  if (c.mlp_ratio != 4.0) d.emplace_back("mlp ratio", number(c.mlp_ratio));
  if (spec.layout) d.emplace_back("layout", spec.layout->str());
  return d;
}

}  // namespace

Family pixart_family() {
  Family f;
  f.name = "PixArt";
  f.sparse_name = "SparseDiT-PixArt";
  f.presets = "PixArt-XL/2";
  f.recognizes = [](const StateDict& sd) {
    return sd.contains("t_block.1.weight") && sd.contains("y_embedder.y_proj.fc1.weight");
  };
  f.from_foreign = [](const StateDict& sd) -> std::optional<StateDict> {
    if (!is_diffusers_pixart(sd)) return std::nullopt;
    auto it = sd.metadata.find("diffusers_config");
    auto src = sd.metadata.find("source_file");
    return convert_diffusers_pixart(sd, it == sd.metadata.end() ? "" : it->second,
                                    src == sd.metadata.end() ? "diffusers folder" : src->second);
  };
  f.detect = detect;
  f.preset = [](const std::string& name) -> std::optional<ModelSpec> {
    if (!std::regex_match(name, preset_re())) return std::nullopt;
    return ModelSpec{"PixArt", pixart_preset(name).to_json(), std::nullopt};
  };
  f.apply_overrides = apply_overrides;
  f.build = [](const ModelSpec& s) -> std::unique_ptr<Backbone> {
    return std::make_unique<PixArtBackbone>(PixArtConfig::from_json(s.config), s.layout);
  };
  f.latent = [](const ModelSpec& s) { return latent_of(PixArtConfig::from_json(s.config)); };
  f.flops = flops;
  f.describe = describe;
  // scripts/inference.py: DPM-Solver, 20 steps, cfg 4.5.
  f.sampling_defaults = [](const ModelSpec&) { return SamplingDefaults{"dpm-solver", "20", 4.5}; };
  add_pixart_size_rows(f);
  f.to_diffusers = pixart_to_diffusers;
  return f;
}

}  // namespace sdit

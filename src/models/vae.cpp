#include "models/vae.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "io/file_util.h"
#include "io/json_fields.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "models/load.h"
#include "util/compat.h"
#include "util/error.h"

namespace sdit {

namespace F = torch::nn::functional;

namespace {

constexpr double kNormEps = 1e-6;

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = 0) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}

torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels) {
  if (channels % groups != 0) fail("VAE: ", channels, " channels cannot form ", groups, " groups");
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(kNormEps));
}

// Downsample2D with padding=0: the asymmetric right/bottom zero pad is what the checkpoints were
// trained with, so a symmetric conv padding would shift the features by half a pixel.
class Downsample2DImpl : public torch::nn::Module {
 public:
  explicit Downsample2DImpl(int64_t ch) { conv = register_module("conv", sdit::conv(ch, ch, 3, 2, 0)); }
  torch::Tensor forward(const torch::Tensor& x) {
    return conv->forward(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
  }
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample2D);

class Upsample2DImpl : public torch::nn::Module {
 public:
  explicit Upsample2DImpl(int64_t ch) { conv = register_module("conv", sdit::conv(ch, ch, 3, 1, 1)); }
  torch::Tensor forward(const torch::Tensor& x) {
    auto up = F::interpolate(x, F::InterpolateFuncOptions()
                                    .scale_factor(std::vector<double>{2.0, 2.0})
                                    .mode(torch::kNearest));
    return conv->forward(up);
  }
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

void emit(const VAETrace& trace, const std::string& name, const torch::Tensor& t) {
  if (trace) trace(name, t);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Config

VAEConfig VAEConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("VAE config.json is not valid JSON: ", e.what());
  }
  const JsonFields f(j, "VAE config.json");
  VAEConfig c;
  if (j.contains("_class_name") && j["_class_name"] != "AutoencoderKL")
    fail("VAE config.json describes a ", j["_class_name"].dump(), ", not an AutoencoderKL");
  for (auto [key, dst] : {std::pair{"in_channels", &c.in_channels}, {"out_channels", &c.out_channels},
                          {"latent_channels", &c.latent_channels}, {"layers_per_block", &c.layers_per_block},
                          {"norm_num_groups", &c.norm_num_groups}})
    f.get(key, *dst, /*positive=*/true);
  f.get("scaling_factor", c.scaling_factor);
  f.get("shift_factor", c.shift_factor);
  f.get("use_quant_conv", c.use_quant_conv);
  f.get("use_post_quant_conv", c.use_post_quant_conv);
  f.get("mid_block_add_attention", c.mid_block_add_attention);
  if (c.scaling_factor == 0.0) fail("VAE config.json: scaling_factor must not be 0");
  if (j.contains("block_out_channels")) {
    const auto& b = j["block_out_channels"];
    if (!b.is_array() || b.empty()) fail("VAE config.json: block_out_channels must be a non-empty list");
    c.block_out_channels.clear();
    for (const auto& v : b) {
      if (!v.is_number_integer() || v.get<int64_t>() <= 0)
        fail("VAE config.json: block_out_channels must hold positive integers");
      c.block_out_channels.push_back(v.get<int64_t>());
    }
  }
  if (j.contains("act_fn") && j["act_fn"] != "silu")
    fail("VAE config.json: act_fn ", j["act_fn"].dump(), " is not supported (only silu)");
  auto check_types = [&](const char* key, const char* want) {
    if (!j.contains(key)) return;
    const auto& t = j[key];
    if (!t.is_array() || t.size() != c.block_out_channels.size())
      fail("VAE config.json: ", key, " must list one block per block_out_channels entry");
    for (const auto& v : t)
      if (v != want) fail("VAE config.json: block type ", v.dump(), " is not supported (only ", want, ")");
  };
  check_types("down_block_types", "DownEncoderBlock2D");
  check_types("up_block_types", "UpDecoderBlock2D");
  return c;
}

std::string VAEConfig::to_json() const {
  nlohmann::json j;
  j["_class_name"] = "AutoencoderKL";
  j["act_fn"] = "silu";
  j["block_out_channels"] = block_out_channels;
  j["down_block_types"] = std::vector<std::string>(block_out_channels.size(), "DownEncoderBlock2D");
  j["up_block_types"] = std::vector<std::string>(block_out_channels.size(), "UpDecoderBlock2D");
  j["in_channels"] = in_channels;
  j["out_channels"] = out_channels;
  j["latent_channels"] = latent_channels;
  j["layers_per_block"] = layers_per_block;
  j["norm_num_groups"] = norm_num_groups;
  j["scaling_factor"] = scaling_factor;
  if (shift_factor != 0.0) j["shift_factor"] = shift_factor;
  j["use_quant_conv"] = use_quant_conv;
  j["use_post_quant_conv"] = use_post_quant_conv;
  j["mid_block_add_attention"] = mid_block_add_attention;
  return j.dump(2);
}

// ---------------------------------------------------------------------------------------------
// Blocks

ResnetBlock2DImpl::ResnetBlock2DImpl(int64_t in, int64_t out, int64_t groups) {
  norm1 = register_module("norm1", group_norm(groups, in));
  conv1 = register_module("conv1", conv(in, out, 3, 1, 1));
  norm2 = register_module("norm2", group_norm(groups, out));
  conv2 = register_module("conv2", conv(out, out, 3, 1, 1));
  if (in != out) conv_shortcut = register_module("conv_shortcut", conv(in, out, 1));
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor& x) {
  auto h = conv1->forward(torch::silu(norm1->forward(x)));
  h = conv2->forward(torch::silu(norm2->forward(h)));
  auto skip = conv_shortcut ? conv_shortcut->forward(x) : x;
  return skip + h;
}

VAEAttentionImpl::VAEAttentionImpl(int64_t channels, int64_t groups) {
  group_norm = register_module("group_norm", sdit::group_norm(groups, channels));
  to_q = register_module("to_q", torch::nn::Linear(channels, channels));
  to_k = register_module("to_k", torch::nn::Linear(channels, channels));
  to_v = register_module("to_v", torch::nn::Linear(channels, channels));
  to_out = register_module("to_out", torch::nn::ModuleList());
  to_out->push_back(torch::nn::Linear(channels, channels));
}

torch::Tensor VAEAttentionImpl::forward(const torch::Tensor& x) {
  const auto b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto tokens = group_norm->forward(x).view({b, c, h * w}).transpose(1, 2);  // (B, HW, C)
  auto q = to_q->forward(tokens), k = to_k->forward(tokens), v = to_v->forward(tokens);
  // diffusers' AttnProcessor: baddbmm with beta=0 folds the 1/sqrt(C) scale into the product.
  const double scale = std::pow(static_cast<double>(c), -0.5);
  auto scores = torch::baddbmm(torch::empty({b, h * w, h * w}, q.options()), q, k.transpose(1, 2),
                               /*beta=*/0.0, /*alpha=*/scale);
  auto out = torch::bmm(scores.softmax(-1), v);
  out = to_out[0]->as<torch::nn::Linear>()->forward(out);
  return out.transpose(1, 2).reshape({b, c, h, w}) + x;
}

VAEMidBlockImpl::VAEMidBlockImpl(int64_t channels, int64_t groups, bool attention) {
  attentions = register_module("attentions", torch::nn::ModuleList());
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (attention) attentions->push_back(VAEAttention(channels, groups));
  resnets->push_back(ResnetBlock2D(channels, channels, groups));
  resnets->push_back(ResnetBlock2D(channels, channels, groups));
}

torch::Tensor VAEMidBlockImpl::forward(const torch::Tensor& x, const std::string& name,
                                       const VAETrace& trace) {
  auto h = resnets[0]->as<ResnetBlock2D>()->forward(x);
  emit(trace, name + ".resnets.0", h);
  if (!attentions->is_empty()) {
    h = attentions[0]->as<VAEAttention>()->forward(h);
    emit(trace, name + ".attentions.0", h);
  }
  h = resnets[1]->as<ResnetBlock2D>()->forward(h);
  emit(trace, name, h);
  return h;
}

VAEEncoderImpl::VAEEncoderImpl(const VAEConfig& cfg) {
  const auto& ch = cfg.block_out_channels;
  const int64_t g = cfg.norm_num_groups;
  conv_in = register_module("conv_in", conv(cfg.in_channels, ch[0], 3, 1, 1));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t prev = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    auto block = std::make_shared<torch::nn::Module>();
    auto resnets = block->register_module("resnets", torch::nn::ModuleList());
    auto downsamplers = block->register_module("downsamplers", torch::nn::ModuleList());
    for (int64_t j = 0; j < cfg.layers_per_block; ++j) {
      resnets->push_back(ResnetBlock2D(j == 0 ? prev : ch[i], ch[i], g));
    }
    if (i + 1 < ch.size()) downsamplers->push_back(Downsample2D(ch[i]));
    down_blocks->push_back(block);
    prev = ch[i];
  }
  mid_block = register_module("mid_block", VAEMidBlock(ch.back(), g, cfg.mid_block_add_attention));
  conv_norm_out = register_module("conv_norm_out", group_norm(g, ch.back()));
  conv_out = register_module("conv_out", conv(ch.back(), 2 * cfg.latent_channels, 3, 1, 1));
}

torch::Tensor VAEEncoderImpl::forward(const torch::Tensor& x, const VAETrace& trace) {
  auto h = conv_in->forward(x);
  emit(trace, "encoder.conv_in", h);
  for (size_t i = 0; i < down_blocks->size(); ++i) {
    auto block = down_blocks[i];
    for (auto& r : *block->named_children()["resnets"]->as<torch::nn::ModuleList>())
      h = r->as<ResnetBlock2D>()->forward(h);
    for (auto& d : *block->named_children()["downsamplers"]->as<torch::nn::ModuleList>())
      h = d->as<Downsample2D>()->forward(h);
    emit(trace, "encoder.down_blocks." + std::to_string(i), h);
  }
  h = mid_block->forward(h, "encoder.mid_block", trace);
  h = conv_norm_out->forward(h);
  emit(trace, "encoder.conv_norm_out", h);
  h = conv_out->forward(torch::silu(h));
  emit(trace, "encoder.conv_out", h);
  return h;
}

VAEDecoderImpl::VAEDecoderImpl(const VAEConfig& cfg) {
  const auto& ch = cfg.block_out_channels;
  const int64_t g = cfg.norm_num_groups, n = static_cast<int64_t>(ch.size());
  conv_in = register_module("conv_in", conv(cfg.latent_channels, ch.back(), 3, 1, 1));
  // diffusers registers up_blocks before assigning mid_block; the order fixes the key order.
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  int64_t prev = ch.back();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t out = ch[n - 1 - i];
    auto block = std::make_shared<torch::nn::Module>();
    auto resnets = block->register_module("resnets", torch::nn::ModuleList());
    auto upsamplers = block->register_module("upsamplers", torch::nn::ModuleList());
    for (int64_t j = 0; j <= cfg.layers_per_block; ++j) {
      resnets->push_back(ResnetBlock2D(j == 0 ? prev : out, out, g));
    }
    if (i + 1 < n) upsamplers->push_back(Upsample2D(out));
    up_blocks->push_back(block);
    prev = out;
  }
  mid_block = register_module("mid_block", VAEMidBlock(ch.back(), g, cfg.mid_block_add_attention));
  conv_norm_out = register_module("conv_norm_out", group_norm(g, ch[0]));
  conv_out = register_module("conv_out", conv(ch[0], cfg.out_channels, 3, 1, 1));
}

torch::Tensor VAEDecoderImpl::forward(const torch::Tensor& z, const VAETrace& trace) {
  auto h = conv_in->forward(z);
  emit(trace, "decoder.conv_in", h);
  h = mid_block->forward(h, "decoder.mid_block", trace);
  for (size_t i = 0; i < up_blocks->size(); ++i) {
    auto block = up_blocks[i];
    for (auto& r : *block->named_children()["resnets"]->as<torch::nn::ModuleList>())
      h = r->as<ResnetBlock2D>()->forward(h);
    for (auto& u : *block->named_children()["upsamplers"]->as<torch::nn::ModuleList>())
      h = u->as<Upsample2D>()->forward(h);
    emit(trace, "decoder.up_blocks." + std::to_string(i), h);
  }
  h = conv_norm_out->forward(h);
  emit(trace, "decoder.conv_norm_out", h);
  h = conv_out->forward(torch::silu(h));
  emit(trace, "decoder.conv_out", h);
  return h;
}

// ---------------------------------------------------------------------------------------------
// AutoencoderKL

torch::Tensor LatentPosterior::sample(const torch::Tensor& noise) const {
  if (!noise.sizes().equals(mean.sizes()))
    fail("posterior noise has shape ", shape_str(noise.sizes().vec()), ", expected ",
         shape_str(mean.sizes().vec()));
  return mean + std() * noise.to(mean.options());
}

AutoencoderKLImpl::AutoencoderKLImpl(const VAEConfig& cfg) : cfg_(cfg) {
  if (cfg.block_out_channels.empty()) fail("VAE config: block_out_channels is empty");
  encoder = register_module("encoder", VAEEncoder(cfg));
  decoder = register_module("decoder", VAEDecoder(cfg));
  const int64_t lc = cfg.latent_channels;
  if (cfg.use_quant_conv) quant_conv = register_module("quant_conv", conv(2 * lc, 2 * lc, 1));
  if (cfg.use_post_quant_conv) post_quant_conv = register_module("post_quant_conv", conv(lc, lc, 1));
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& z) {
  if (z.dim() != 4 || z.size(1) != cfg_.latent_channels)
    fail("VAE decode expects latents of shape [N, ", cfg_.latent_channels, ", h, w], got ",
         shape_str(z.sizes().vec()));
  auto h = post_quant_conv ? post_quant_conv->forward(z) : z;
  emit(trace_, "post_quant_conv", h);
  return decoder->forward(h, trace_);
}

torch::Tensor AutoencoderKLImpl::decode_latents(const torch::Tensor& latents, int64_t tile) {
  torch::NoGradGuard no_grad;
  if (latents.dim() != 4 || latents.size(1) != cfg_.latent_channels)
    fail("VAE decode expects latents of shape [N, ", cfg_.latent_channels, ", h, w], got ",
         shape_str(latents.sizes().vec()));
  auto z = latents.to(decoder->conv_in->weight.device(), torch::kFloat32) / cfg_.scaling_factor;
  if (cfg_.shift_factor != 0.0) z = z + cfg_.shift_factor;
  if (tile < 0) fail("--tile must be >= 0, got ", tile);
  if (tile > 0 && (latents.size(2) > tile || latents.size(3) > tile)) return decode_tiled(z, tile);
  return decode(z);
}

LatentPosterior AutoencoderKLImpl::encode(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const int64_t f = cfg_.downscale();
  if (x.dim() != 4 || x.size(1) != cfg_.in_channels || x.size(2) % f || x.size(3) % f)
    fail("VAE encode expects images of shape [N, ", cfg_.in_channels, ", H, W] with H, W multiples of ",
         f, ", got ", shape_str(x.sizes().vec()));
  auto h = encoder->forward(x.to(encoder->conv_in->weight.device(), torch::kFloat32), trace_);
  if (quant_conv) h = quant_conv->forward(h);
  emit(trace_, "quant_conv", h);
  auto parts = h.chunk(2, 1);
  return {parts[0], torch::clamp(parts[1], -30.0, 20.0)};
}

// Each tile is decoded with its own GroupNorm statistics (as diffusers' tiled_decode), so the
// seams are hidden by decoding overlapping tiles and blending them linearly across the overlap.
torch::Tensor AutoencoderKLImpl::decode_tiled(const torch::Tensor& z, int64_t tile) {
  const int64_t f = cfg_.downscale();
  const int64_t overlap = std::max<int64_t>(1, tile / 4);
  const int64_t stride = tile - overlap;
  if (stride <= 0) fail("--tile ", tile, " is too small (use at least 2 latent pixels)");
  const int64_t H = z.size(2), W = z.size(3);
  auto starts = [&](int64_t n) {
    std::vector<int64_t> s;
    for (int64_t p = 0;; p += stride) {
      if (p + tile >= n) {
        s.push_back(std::max<int64_t>(0, n - tile));
        break;
      }
      s.push_back(p);
    }
    return s;
  };
  auto out = torch::zeros({z.size(0), cfg_.out_channels, H * f, W * f}, z.options());
  auto weight = torch::zeros({1, 1, H * f, W * f}, z.options());
  const int64_t ramp = overlap * f;
  auto ramp_1d = [&](int64_t len, bool lo, bool hi) {
    // Weights rise over the overlap on inner edges only; image borders keep full weight.
    auto w = torch::ones({len}, z.options());
    auto r = (torch::arange(ramp, z.options()) + 0.5) / static_cast<double>(ramp);
    if (lo) w.narrow(0, 0, std::min(ramp, len)).copy_(r.narrow(0, 0, std::min(ramp, len)));
    if (hi) w.narrow(0, len - std::min(ramp, len), std::min(ramp, len))
                .mul_(r.flip(0).narrow(0, ramp - std::min(ramp, len), std::min(ramp, len)));
    return w;
  };
  auto ys = starts(H), xs = starts(W);
  for (auto y0 : ys) {
    for (auto x0 : xs) {
      const int64_t th = std::min(tile, H), tw = std::min(tile, W);
      auto piece = decode(z.narrow(2, y0, th).narrow(3, x0, tw));
      auto wy = ramp_1d(th * f, y0 > 0, y0 + th < H);
      auto wx = ramp_1d(tw * f, x0 > 0, x0 + tw < W);
      auto w2 = wy.view({1, 1, -1, 1}) * wx.view({1, 1, 1, -1});
      out.narrow(2, y0 * f, th * f).narrow(3, x0 * f, tw * f).add_(piece * w2);
      weight.narrow(2, y0 * f, th * f).narrow(3, x0 * f, tw * f).add_(w2);
    }
  }
  return out / weight;
}

}  // namespace sdit

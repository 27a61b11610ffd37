// Reading a VAE checkpoint in any of the layouts it ships in and building the matching model.
#include <algorithm>
#include <set>

#include "io/file_util.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "models/load.h"
#include "models/vae.h"
#include "util/error.h"

namespace sdit {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, size_t from) {
  std::string out;
  for (size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
  return out;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

bool is_int(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Resnet parameter names differ only in the shortcut.
std::string ldm_resnet_param(const std::string& rest) {
  return starts_with(rest, "nin_shortcut.") ? "conv_shortcut." + rest.substr(13) : rest;
}

// "mid.<...>" of the LDM layout, relative to encoder./decoder.; empty when not a mid-block key.
std::string ldm_mid(const std::vector<std::string>& p) {
  if (p.size() < 4 || p[1] != "mid") return "";
  if (p[2] == "block_1") return "mid_block.resnets.0." + ldm_resnet_param(join(p, 3));
  if (p[2] == "block_2") return "mid_block.resnets.1." + ldm_resnet_param(join(p, 3));
  if (p[2] == "attn_1") {
    static const std::pair<const char*, const char*> names[] = {
        {"norm", "group_norm"}, {"q", "to_q"}, {"k", "to_k"}, {"v", "to_v"}, {"proj_out", "to_out.0"}};
    for (auto& [from, to] : names)
      if (p[3] == from) return std::string("mid_block.attentions.0.") + to + "." + join(p, 4);
  }
  return "";
}

// Key in the LDM layout -> diffusers key, or "" when the key is not part of the LDM VAE.
std::string ldm_to_diffusers(const std::string& key, int64_t n_up) {
  auto p = split(key, '.');
  if (p.size() < 2) return "";
  if (p[0] == "quant_conv" || p[0] == "post_quant_conv") return key;
  if (p[0] != "encoder" && p[0] != "decoder") return "";
  const std::string top = p[0] + ".";
  if (p[1] == "conv_in" || p[1] == "conv_out") return key;
  if (p[1] == "norm_out") return top + "conv_norm_out." + join(p, 2);
  if (auto mid = ldm_mid(p); !mid.empty()) return top + mid;
  const bool enc = p[0] == "encoder";
  if (p.size() >= 5 && p[1] == (enc ? "down" : "up") && is_int(p[2])) {
    int64_t b = std::stoll(p[2]);
    if (!enc) b = n_up - 1 - b;  // LDM counts decoder levels from the highest resolution
    const std::string block = top + (enc ? "down_blocks." : "up_blocks.") + std::to_string(b) + ".";
    if (p[3] == "block" && is_int(p[4])) return block + "resnets." + p[4] + "." + ldm_resnet_param(join(p, 5));
    if (p[3] == (enc ? "downsample" : "upsample"))
      return block + (enc ? "downsamplers.0." : "upsamplers.0.") + join(p, 4);
  }
  return "";
}

bool is_attention_linear(const std::string& key) {
  return key.find(".attentions.") != std::string::npos && key.find(".group_norm.") == std::string::npos &&
         (key.size() > 7 && key.compare(key.size() - 7, 7, ".weight") == 0);
}

int64_t count_children(const StateDict& sd, const std::string& prefix) {
  std::set<int64_t> seen;
  for (const auto& k : sd.keys()) {
    if (!starts_with(k, prefix)) continue;
    auto idx = split(k.substr(prefix.size()), '.')[0];
    if (is_int(idx)) seen.insert(std::stoll(idx));
  }
  return seen.empty() ? 0 : *seen.rbegin() + 1;
}

const torch::Tensor& need(const StateDict& sd, const std::string& key) {
  const auto* t = sd.find(key);
  if (!t) fail("VAE checkpoint has no '", key, "': not an AutoencoderKL state dict");
  return *t;
}

}  // namespace

StateDict canonical_vae_state_dict(const StateDict& in) {
  // A full SD checkpoint keeps the VAE under first_stage_model.; everything else is the UNet etc.
  const std::string sd_prefix = "first_stage_model.";
  bool prefixed = std::any_of(in.keys().begin(), in.keys().end(),
                              [&](const std::string& k) { return starts_with(k, sd_prefix); });
  StateDict src;
  for (const auto& k : in.keys()) {
    if (!prefixed) src.set(k, in.at(k));
    else if (starts_with(k, sd_prefix)) src.set(k.substr(sd_prefix.size()), in.at(k));
  }
  src.metadata = in.metadata;

  const bool ldm = std::any_of(src.keys().begin(), src.keys().end(), [](const std::string& k) {
    return starts_with(k, "encoder.down.") || starts_with(k, "decoder.up.") ||
           starts_with(k, "encoder.mid.") || starts_with(k, "decoder.mid.");
  });
  const int64_t n_up = ldm ? count_children(src, "decoder.up.") : 0;

  StateDict out;
  out.metadata = src.metadata;
  for (const auto& k : src.keys()) {
    std::string name = k;
    if (ldm) {
      // The LDM training checkpoints also carry the discriminator ("loss.") and EMA bookkeeping.
      if (starts_with(k, "loss.") || starts_with(k, "model_ema.")) continue;
      auto mapped = ldm_to_diffusers(k, n_up);
      if (!mapped.empty()) name = mapped;
    } else {
      static const std::pair<const char*, const char*> legacy[] = {
          {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
      if (k.find(".attentions.") != std::string::npos) {
        for (auto& [from, to] : legacy) {
          auto pos = name.find(from);
          if (pos != std::string::npos) name = name.substr(0, pos) + to + name.substr(pos + std::string(from).size());
        }
      }
    }
    torch::Tensor t = src.at(k);
    // LDM stores the attention projections as 1x1 convolutions.
    if (is_attention_linear(name) && t.dim() == 4 && t.size(2) == 1 && t.size(3) == 1)
      t = t.flatten(1);
    if (out.contains(name)) fail("VAE checkpoint names '", name, "' twice (both old and new key names?)");
    out.set(name, t);
  }
  return out;
}

VAEConfig detect_vae_config(const StateDict& sd) {
  VAEConfig c;
  const int64_t n = count_children(sd, "encoder.down_blocks.");
  if (n == 0) fail("VAE checkpoint has no encoder.down_blocks: not an AutoencoderKL state dict");
  c.block_out_channels.clear();
  for (int64_t i = 0; i < n; ++i)
    c.block_out_channels.push_back(
        need(sd, "encoder.down_blocks." + std::to_string(i) + ".resnets.0.conv1.weight").size(0));
  c.layers_per_block = count_children(sd, "encoder.down_blocks.0.resnets.");
  c.in_channels = need(sd, "encoder.conv_in.weight").size(1);
  c.out_channels = need(sd, "decoder.conv_out.weight").size(0);
  c.latent_channels = need(sd, "decoder.conv_in.weight").size(1);
  c.use_quant_conv = sd.contains("quant_conv.weight");
  c.use_post_quant_conv = sd.contains("post_quant_conv.weight");
  c.mid_block_add_attention = sd.contains("decoder.mid_block.attentions.0.to_q.weight");
  if (sd.metadata.count("scaling_factor")) {
    try {
      c.scaling_factor = std::stod(sd.metadata.at("scaling_factor"));
    } catch (const std::exception&) {
      fail("VAE checkpoint metadata scaling_factor '", sd.metadata.at("scaling_factor"), "' is not a number");
    }
  }
  return c;
}

AutoencoderKL load_vae(const std::string& path) {
  std::string weights = path, config_path;
  if (is_directory(path)) {
    weights = path + "/diffusion_pytorch_model.safetensors";
    config_path = path + "/config.json";
    if (!is_regular_file(weights))
      fail("VAE folder '", path, "' has no diffusion_pytorch_model.safetensors (expected a diffusers model folder)");
    if (!is_regular_file(config_path)) config_path.clear();
  } else if (!is_regular_file(path)) {
    fail("VAE '", path, "' does not exist (give a diffusers model folder or a .safetensors file)");
  }
  StateDict sd = canonical_vae_state_dict(read_safetensors(weights));
  VAEConfig cfg = config_path.empty() ? detect_vae_config(sd) : VAEConfig::from_json(read_text_file(config_path));
  AutoencoderKL vae(cfg);
  auto report = load_state_dict(*vae, sd, /*strict=*/false);
  if (!report.ok()) fail("VAE weights in '", weights, "' do not match the model", config_path.empty() ? "" : " of config.json", ":\n", report.str());
  vae->eval();
  return vae;
}

}  // namespace sdit

// Diffusers' PixArtTransformer2DModel layout mapped back to the original PixArt names (the inverse
// of diffusers' scripts/convert_pixart_alpha_to_diffusers.py, for any depth; docs/pixart.md §3.2):
// attn1.to_{q,k,v} -> attn.qkv, attn2.to_{k,v} -> cross_attn.kv_linear, adaln_single -> t_embedder,
// t_block, csize/ar_embedder, caption_projection -> y_embedder.y_proj. pos_embed is recomputed from
// config.json; the learned null caption (y_embedding) does not exist in this layout.
#include <cmath>
#include <set>

#include "io/json_fields.h"
#include "models/pixart.h"
#include "util/error.h"

namespace sdit {

using nlohmann::json;

bool is_diffusers_pixart(const StateDict& sd) {
  return sd.contains("adaln_single.linear.weight") && sd.contains("caption_projection.linear_1.weight");
}

namespace {

// config.json with the defaults diffusers derives where the released configs are silent.
struct DiffusersPixArt {
  int64_t sample_size = 0, heads = 0;
  double interpolation_scale = 1.0;
  bool additional_conditions = false;
  bool conditions_given = false;  // use_additional_conditions present (else: sample_size == 128)
};

DiffusersPixArt read_config(const std::string& text, const std::string& source) {
  if (text.empty())
    fail("diffusers PixArt checkpoint '", source, "' has no config.json beside it; its sample_size (the latent side "
         "of the training size) is needed for the position embedding");
  json cfg;
  try {
    cfg = json::parse(text);
  } catch (const json::exception& e) {
    fail("config.json of '", source, "' is not valid JSON: ", e.what());
  }
  const JsonFields f(cfg, "config.json of '" + source + "'");
  std::string cls, norm;
  f.get("_class_name", cls);
  f.get("norm_type", norm);
  // The released repos say Transformer2DModel; diffusers remaps it by norm_type == "ada_norm_single".
  if (!cls.empty() && cls != "Transformer2DModel" && cls != "PixArtTransformer2DModel")
    fail("config.json of '", source, "' describes a ", cls, ", not a PixArt transformer");
  if (!norm.empty() && norm != "ada_norm_single")
    fail("config.json of '", source, "': norm_type '", norm, "' is not PixArt's ada_norm_single");
  DiffusersPixArt d;
  if (!f.has("sample_size")) fail("config.json of '", source, "' has no 'sample_size'");
  f.get("sample_size", d.sample_size, true);
  f.get("num_attention_heads", d.heads, true);
  // 1024 latent pixels = 8192 px: far beyond any released model, and a bound on the table built below.
  if (d.sample_size > 1024) fail("config.json of '", source, "': sample_size ", d.sample_size, " is implausibly large");
  d.interpolation_scale = static_cast<double>(std::max<int64_t>(d.sample_size / 64, 1));
  f.get("interpolation_scale", d.interpolation_scale);
  if (!(d.interpolation_scale > 0) || !std::isfinite(d.interpolation_scale))
    fail("config.json of '", source, "': interpolation_scale must be positive, got ", d.interpolation_scale);
  d.additional_conditions = d.sample_size == 128;
  d.conditions_given = f.has("use_additional_conditions");
  f.get("use_additional_conditions", d.additional_conditions);
  return d;
}

// Our config of the renamed tensors: sizes from the weights, the rest from config.json; no null caption.
json native_config(const StateDict& out, const DiffusersPixArt& d, int64_t depth, bool has_sizes) {
  const auto& patch_w = out.at("x_embedder.proj.weight");
  PixArtConfig c;
  c.input_size = d.sample_size;
  c.patch_size = patch_w.size(2);
  c.in_channels = patch_w.size(1);
  c.hidden_size = patch_w.size(0);
  c.depth = depth;
  c.caption_channels = out.at("y_embedder.y_proj.fc1.weight").size(1);
  c.mlp_ratio = static_cast<double>(out.at("blocks.0.mlp.fc1.weight").size(0)) / static_cast<double>(c.hidden_size);
  c.lewei_scale = d.interpolation_scale;
  c.learn_sigma = out.at("final_layer.linear.weight").size(0) == c.patch_size * c.patch_size * 2 * c.in_channels;
  c.micro_conditions = has_sizes;
  c.null_caption = false;
  json cfg = c.to_json();
  if (d.heads > 0) cfg["num_heads"] = d.heads;
  else cfg.erase("num_heads");
  return cfg;
}

}  // namespace

namespace {

// One module of the mapping: its original name and the diffusers module(s) whose rows make it up
// (attn.qkv = to_q | to_k | to_v, cross_attn.kv_linear = to_k | to_v), with .weight and .bias, or a
// plain tensor (the scale-shift tables).
struct Rename {
  std::string native;
  std::vector<std::string> diffusers;
  bool linear = true;
};

std::vector<Rename> renames(int64_t depth, bool sizes) {
  std::vector<Rename> r = {{"x_embedder.proj", {"pos_embed.proj"}},
                           {"t_embedder.mlp.0", {"adaln_single.emb.timestep_embedder.linear_1"}},
                           {"t_embedder.mlp.2", {"adaln_single.emb.timestep_embedder.linear_2"}},
                           {"t_block.1", {"adaln_single.linear"}},
                           {"y_embedder.y_proj.fc1", {"caption_projection.linear_1"}},
                           {"y_embedder.y_proj.fc2", {"caption_projection.linear_2"}}};
  for (int64_t i = 0; i < depth; ++i) {
    const std::string s = "transformer_blocks." + std::to_string(i) + ".", o = "blocks." + std::to_string(i) + ".";
    r.push_back({o + "scale_shift_table", {s + "scale_shift_table"}, false});
    r.push_back({o + "attn.qkv", {s + "attn1.to_q", s + "attn1.to_k", s + "attn1.to_v"}});
    r.push_back({o + "attn.proj", {s + "attn1.to_out.0"}});
    r.push_back({o + "cross_attn.q_linear", {s + "attn2.to_q"}});
    r.push_back({o + "cross_attn.kv_linear", {s + "attn2.to_k", s + "attn2.to_v"}});  // K rows first, then V
    r.push_back({o + "cross_attn.proj", {s + "attn2.to_out.0"}});
    r.push_back({o + "mlp.fc1", {s + "ff.net.0.proj"}});
    r.push_back({o + "mlp.fc2", {s + "ff.net.2"}});
  }
  r.push_back({"final_layer.scale_shift_table", {"scale_shift_table"}, false});
  r.push_back({"final_layer.linear", {"proj_out"}});
  if (sizes)
    for (auto [ours, theirs] : {std::pair{"csize_embedder", "resolution_embedder"}, {"ar_embedder", "aspect_ratio_embedder"}})
      for (auto [i, j] : {std::pair{"0", "1"}, {"2", "2"}})
        r.push_back({std::string(ours) + ".mlp." + i, {std::string("adaln_single.emb.") + theirs + ".linear_" + j}});
  return r;
}

std::vector<std::string> suffixes(const Rename& r) {
  return r.linear ? std::vector<std::string>{".weight", ".bias"} : std::vector<std::string>{""};
}

}  // namespace

StateDict convert_diffusers_pixart(const StateDict& sd, const std::string& config_json, const std::string& source) {
  const DiffusersPixArt d = read_config(config_json, source);
  int64_t depth = 0;
  while (sd.contains("transformer_blocks." + std::to_string(depth) + ".scale_shift_table")) ++depth;
  if (depth == 0) fail("diffusers PixArt checkpoint '", source, "' has no transformer_blocks.0.scale_shift_table");
  const bool has_sizes = sd.contains("adaln_single.emb.resolution_embedder.linear_1.weight");
  if (has_sizes != d.additional_conditions)
    fail("config.json of '", source, "' says use_additional_conditions = ", d.additional_conditions ? "true" : "false",
         d.conditions_given ? "" : " (by default: sample_size == 128)", " but the weights ",
         has_sizes ? "hold" : "lack", " the resolution/aspect-ratio embedders");
  std::set<std::string> used;
  StateDict out;
  for (const auto& r : renames(depth, has_sizes))
    for (const auto& wb : suffixes(r)) {
      std::vector<torch::Tensor> parts;
      for (const auto& k : r.diffusers) {
        const torch::Tensor* t = sd.find(k + wb);
        if (!t) fail("diffusers PixArt checkpoint '", source, "' lacks tensor '", k + wb, "'");
        used.insert(k + wb);
        parts.push_back(*t);
      }
      out.set(r.native + wb, parts.size() == 1 ? parts[0] : torch::cat(parts, 0));
    }
  std::vector<std::string> unknown;
  for (const auto& k : sd.keys())
    if (!used.count(k)) unknown.push_back(k);
  if (!unknown.empty())
    fail("diffusers checkpoint '", source, "' is not a PixArt transformer: ", unknown.size(),
         " unexpected tensor(s), e.g. '", unknown.front(), "'");
  const auto& patch_w = out.at("x_embedder.proj.weight");
  if (patch_w.dim() != 4 || patch_w.size(2) != patch_w.size(3))
    fail("diffusers PixArt checkpoint '", source, "': pos_embed.proj.weight has shape ",
         shape_str(patch_w.sizes().vec()), ", expected [hidden, channels, p, p]");
  const int64_t patch = patch_w.size(2);
  if (d.sample_size % patch != 0)
    fail("config.json of '", source, "': sample_size ", d.sample_size, " is not a multiple of the patch size ", patch);
  const int64_t base = d.sample_size / patch;
  out.set("pos_embed", sincos_pos_embed_2d(patch_w.size(0), base, base, base, base, d.interpolation_scale));
  out.metadata = sd.metadata;
  out.metadata["source_format"] = "diffusers";
  out.metadata["config"] = native_config(out, d, depth, has_sizes).dump();
  return out;
}

DiffusersFolder pixart_to_diffusers(const StateDict& native, const ModelSpec& spec) {
  if (spec.sparse()) fail("a ", display_name(spec), " has no diffusers layout (diffusers knows the dense PixArt only)");
  const PixArtConfig c = PixArtConfig::from_json(spec.config);
  if (c.num_heads <= 0) fail("the head count is unknown: pass --num-heads to write diffusers' config.json");
  DiffusersFolder f;
  for (const auto& r : renames(c.depth, c.micro_conditions))
    for (const auto& wb : suffixes(r)) {
      const auto parts = native.at(r.native + wb).chunk(static_cast<int64_t>(r.diffusers.size()), 0);
      for (size_t i = 0; i < parts.size(); ++i) f.tensors.set(r.diffusers[i] + wb, parts[i].contiguous());
    }
  // What diffusers' save_config writes for PixArtTransformer2DModel, both defaults made explicit.
  f.config = {{"_class_name", "PixArtTransformer2DModel"},
              {"num_attention_heads", c.num_heads},
              {"attention_head_dim", c.hidden_size / c.num_heads},
              {"in_channels", c.in_channels},
              {"out_channels", c.out_channels()},
              {"num_layers", c.depth},
              {"cross_attention_dim", c.hidden_size},
              {"attention_bias", true},
              {"sample_size", c.input_size},
              {"patch_size", c.patch_size},
              {"activation_fn", "gelu-approximate"},
              {"num_embeds_ada_norm", 1000},
              {"norm_type", "ada_norm_single"},
              {"norm_elementwise_affine", false},
              {"norm_eps", 1e-6},
              {"caption_channels", c.caption_channels},
              {"interpolation_scale", c.lewei_scale},
              {"use_additional_conditions", c.micro_conditions}};
  if (c.null_caption) f.dropped.push_back("y_embedder.y_embedding (the learned null caption)");
  f.dropped.push_back("pos_embed (recomputed from sample_size and interpolation_scale)");
  return f;
}

}  // namespace sdit

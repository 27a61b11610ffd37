// Diffusers' DiTTransformer2DModel layout mapped back to the original DiT names (the inverse of
// diffusers' scripts/convert_dit_to_diffusers.py): qkv re-concatenated, the embedders that diffusers
// copies into every block taken from block 0, pos_embed recomputed from config.json's sample_size.
#include <set>

#include "models/dit.h"
#include "util/error.h"

namespace sdit {

using nlohmann::json;

bool is_diffusers_dit(const StateDict& sd) {
  return sd.contains("transformer_blocks.0.norm1.linear.weight") || sd.contains("proj_out_1.weight");
}

namespace {

// Takes tensors out of the diffusers state dict by name, remembering which were used, so that
// anything left over (a tensor this mapping does not know) is reported instead of dropped.
struct Taker {
  const StateDict& sd;
  const std::string& source;
  std::set<std::string> used;
  torch::Tensor operator()(const std::string& k) {
    const torch::Tensor* t = sd.find(k);
    if (!t) fail("diffusers DiT checkpoint '", source, "' lacks tensor '", k, "'");
    used.insert(k);
    return *t;
  }
  void check_all_used() const {
    // Diffusers copies the embedders into every block; the original model has them once.
    std::vector<std::string> unknown;
    for (const auto& k : sd.keys()) {
      if (used.count(k)) continue;
      if (k.rfind("transformer_blocks.", 0) == 0 && k.find(".norm1.emb.") != std::string::npos) continue;
      unknown.push_back(k);
    }
    if (unknown.empty()) return;
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", '" : "'") + unknown[i] + "'";
    fail("diffusers checkpoint '", source, "' is not a DiT: ", unknown.size(), " unexpected tensor(s), e.g. ", list);
  }
};

json parse_config(const std::string& config_json, const std::string& source) {
  if (config_json.empty())
    fail("diffusers DiT checkpoint '", source, "' has no config.json beside it; its sample_size (the latent "
         "side, e.g. 32 for 256 px) is needed to compute pos_embed");
  json cfg;
  try {
    cfg = json::parse(config_json);
  } catch (const json::exception& e) {
    fail("config.json of '", source, "' is not valid JSON: ", e.what());
  }
  if (!cfg.is_object() || !cfg.contains("sample_size") || !cfg["sample_size"].is_number_integer())
    fail("config.json of diffusers DiT checkpoint '", source, "' has no integer 'sample_size' (the latent side, "
         "e.g. 32 for 256 px); it is needed to compute pos_embed");
  return cfg;
}

void map_blocks(Taker& take, StateDict& out, int64_t depth) {
  for (int64_t i = 0; i < depth; ++i) {
    const std::string d = "transformer_blocks." + std::to_string(i) + ".";
    const std::string o = "blocks." + std::to_string(i) + ".";
    for (const std::string wb : {"weight", "bias"}) {
      out.set(o + "attn.qkv." + wb, torch::cat({take(d + "attn1.to_q." + wb), take(d + "attn1.to_k." + wb),
                                                  take(d + "attn1.to_v." + wb)}, 0));
      out.set(o + "attn.proj." + wb, take(d + "attn1.to_out.0." + wb));
      out.set(o + "mlp.fc1." + wb, take(d + "ff.net.0.proj." + wb));
      out.set(o + "mlp.fc2." + wb, take(d + "ff.net.2." + wb));
      out.set(o + "adaLN_modulation.1." + wb, take(d + "norm1.linear." + wb));
    }
  }
}

}  // namespace

StateDict convert_diffusers_dit(const StateDict& sd, const std::string& config_json, const std::string& source) {
  const json cfg = parse_config(config_json, source);
  const int64_t sample = cfg["sample_size"].get<int64_t>();
  int64_t depth = 0;
  while (sd.contains("transformer_blocks." + std::to_string(depth) + ".norm1.linear.weight")) ++depth;
  if (depth == 0) fail("diffusers DiT checkpoint '", source, "' has no transformer_blocks.0.norm1.linear.weight");

  Taker take{sd, source, {}};
  StateDict out;
  const torch::Tensor patch_w = take("pos_embed.proj.weight");
  if (patch_w.dim() != 4 || patch_w.size(2) != patch_w.size(3))
    fail("diffusers DiT checkpoint '", source, "': pos_embed.proj.weight has shape ", shape_str(patch_w.sizes().vec()),
         ", expected [hidden, channels, p, p]");
  const int64_t hidden = patch_w.size(0), patch = patch_w.size(2), in_ch = patch_w.size(1);
  if (sample <= 0 || sample % patch != 0)
    fail("config.json of '", source, "': sample_size ", sample, " is not a positive multiple of the patch size ", patch);
  out.set("pos_embed", sincos_pos_embed_2d(hidden, sample / patch));
  out.set("x_embedder.proj.weight", patch_w);
  out.set("x_embedder.proj.bias", take("pos_embed.proj.bias"));
  const std::string emb = "transformer_blocks.0.norm1.emb.";
  for (const char* wb : {"weight", "bias"}) {
    out.set(std::string("t_embedder.mlp.0.") + wb, take(emb + "timestep_embedder.linear_1." + wb));
    out.set(std::string("t_embedder.mlp.2.") + wb, take(emb + "timestep_embedder.linear_2." + wb));
  }
  out.set("y_embedder.embedding_table.weight", take(emb + "class_embedder.embedding_table.weight"));
  map_blocks(take, out, depth);
  for (const std::string wb : {"weight", "bias"}) {
    out.set("final_layer.adaLN_modulation.1." + wb, take("proj_out_1." + wb));
    out.set("final_layer.linear." + wb, take("proj_out_2." + wb));
  }
  take.check_all_used();

  out.metadata = sd.metadata;
  out.metadata["source_format"] = "diffusers";
  json dit = {{"input_size", sample},
              {"patch_size", patch},
              {"in_channels", in_ch},
              {"hidden_size", hidden},
              {"depth", depth},
              {"num_classes", out.at("y_embedder.embedding_table.weight").size(0) - 1},
              {"learn_sigma", out.at("final_layer.linear.weight").size(0) == patch * patch * 2 * in_ch}};
  if (cfg.contains("num_attention_heads") && cfg["num_attention_heads"].is_number_integer())
    dit["num_heads"] = cfg["num_attention_heads"];
  out.metadata["config"] = dit.dump();
  return out;
}

}  // namespace sdit

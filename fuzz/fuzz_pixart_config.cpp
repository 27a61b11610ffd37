// libFuzzer target: a diffusers PixArt transformer's config.json (read by the loader of a
// `transformer/` folder, with defaults filled as diffusers does) must give a model config or one
// sdit::Error, never a crash. The weights are a fixed tiny PixArt in diffusers' names; the input is
// the config text. Seeds: the golden pixart/{base,ms}/transformer/config.json, the same without
// interpolation_scale / use_additional_conditions, {"sample_size": 0}, {"sample_size": 1e30}, [].
#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"
#include "models/pixart.h"
#include "util/error.h"

void sdit::fuzz::write_seeds(const std::string& dir) {
  write_seed(dir, "base.json",
             R"({"_class_name": "PixArtTransformer2DModel", "sample_size": 32, "patch_size": 2, "in_channels": 4,)"
             R"( "out_channels": 8, "num_layers": 1, "num_attention_heads": 1, "attention_head_dim": 12,)"
             R"( "caption_channels": 8, "interpolation_scale": 1, "use_additional_conditions": false})");
  write_seed(dir, "zero.json", R"({"sample_size": 0})");
  write_seed(dir, "huge.json", R"({"sample_size": 1e30})");
  write_seed(dir, "array.json", "[]");
}

namespace {

sdit::StateDict tiny_diffusers_pixart() {
  const int64_t C = 12, Cc = 8;
  sdit::StateDict sd;
  auto lin = [&](const std::string& k, int64_t out, int64_t in) {
    sd.set(k + ".weight", torch::zeros({out, in}));
    sd.set(k + ".bias", torch::zeros({out}));
  };
  sd.set("pos_embed.proj.weight", torch::zeros({C, 4, 2, 2}));
  sd.set("pos_embed.proj.bias", torch::zeros({C}));
  lin("adaln_single.emb.timestep_embedder.linear_1", C, 256);
  lin("adaln_single.emb.timestep_embedder.linear_2", C, C);
  lin("adaln_single.linear", 6 * C, C);
  lin("caption_projection.linear_1", C, Cc);
  lin("caption_projection.linear_2", C, C);
  const std::string b = "transformer_blocks.0.";
  sd.set(b + "scale_shift_table", torch::zeros({6, C}));
  for (auto n : {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
                 "attn2.to_out.0"})
    lin(b + n, C, C);
  lin(b + "ff.net.0.proj", 4 * C, C);
  lin(b + "ff.net.2", C, 4 * C);
  sd.set("scale_shift_table", torch::zeros({2, C}));
  lin("proj_out", 32, C);
  return sd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sdit::StateDict sd = tiny_diffusers_pixart();
  const std::string config(reinterpret_cast<const char*>(data), size);
  try {
    auto native = sdit::convert_diffusers_pixart(sd, config, "fuzz");
    (void)native;
  } catch (const sdit::Error&) {
  }
  return 0;
}

// PixArt's two checkpoint layouts: the released diffusers configs' defaults, `convert --diffusers`
// and back, and the golden sampling runs from a diffusers transformer folder (../shared/golden/pixart).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "cli_runner.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "models/pixart.h"
#include "pixart_golden.h"
#include "testing.h"
#include "util/error.h"

using namespace sdit;
using namespace sdit::pixart_test;

TEST(PixArt, ReleasedDiffusersConfigDefaultsAreFilledAsDiffusersDoes) {
  // The released repos' config.json: class Transformer2DModel, no interpolation_scale, no
  // use_additional_conditions; both then follow from sample_size (128: lewei 2 with size embedders).
  auto sd = load_checkpoint(golden("pixart/ms/transformer"));
  auto cfg = nlohmann::json::parse(sd.metadata.at("diffusers_config"));
  cfg["_class_name"] = "Transformer2DModel";
  cfg.erase("interpolation_scale");
  cfg.erase("use_additional_conditions");
  // sample_size 12: no size embedders by default, but the weights hold them.
  EXPECT_THROW(convert_diffusers_pixart(sd, cfg.dump(), "test"), Error);
  cfg["sample_size"] = 128;
  auto meta = nlohmann::json::parse(convert_diffusers_pixart(sd, cfg.dump(), "test").metadata.at("config"));
  EXPECT_EQ(meta.at("lewei_scale").get<double>(), 2.0);
  EXPECT_EQ(meta.at("micro_conditions").get<bool>(), true);
  EXPECT_EQ(meta.at("input_size").get<int64_t>(), 128);
  cfg["_class_name"] = "DiTTransformer2DModel";
  EXPECT_THROW(convert_diffusers_pixart(sd, cfg.dump(), "test"), Error);
  auto base = load_checkpoint(golden("pixart/base/transformer"));
  auto bcfg = nlohmann::json::parse(base.metadata.at("diffusers_config"));
  bcfg.erase("interpolation_scale");
  bcfg.erase("use_additional_conditions");
  meta = nlohmann::json::parse(convert_diffusers_pixart(base, bcfg.dump(), "test").metadata.at("config"));
  EXPECT_EQ(meta.at("lewei_scale").get<double>(), 1.0);  // max(8 // 64, 1)
  EXPECT_EQ(meta.at("micro_conditions").get<bool>(), false);
}

// convert --diffusers writes what diffusers' own converter wrote for the goldens (same tensors, a
// config that loads back to the same model), and --format-only takes a diffusers folder back.
TEST(PixArt, ConvertRewritesBetweenTheLayouts) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    const auto ctor = case_json(c).at("original_constructor");
    const std::string dir = temp_path(std::string("to_diffusers_") + c);
    std::filesystem::remove_all(dir);
    auto r = run_cli("convert --diffusers --from " + golden(std::string("pixart/") + c + "/pixart.pth") + " --to " +
                     dir + " --num-heads " + std::to_string(ctor.at("num_heads").get<int64_t>()) + " --lewei-scale " +
                     std::to_string(ctor.at("lewei_scale").get<double>()));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("y_embedder.y_embedding"), std::string::npos) << r.output;
    const auto ours = read_safetensors(dir + "/diffusion_pytorch_model.safetensors");
    const auto theirs = read_safetensors(golden(std::string("pixart/") + c + "/transformer/diffusion_pytorch_model.safetensors"));
    EXPECT_EQ(ours.size(), theirs.size());
    for (const auto& k : theirs.keys()) {
      ASSERT_TRUE(ours.contains(k)) << k;
      EXPECT_TRUE(torch::equal(ours.at(k), theirs.at(k))) << k;
    }
    auto f = read(std::string(c) + "/forward.safetensors");
    auto m = Model::load(dir);
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::equal(m.forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd")),
                             load_pth(c).forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd"))));
    const std::string back = temp_path(std::string("from_diffusers_") + c + ".safetensors");
    r = run_cli("convert --format-only -q --from " + dir + " --to " + back);
    ASSERT_EQ(r.status, 0) << r.output;
    auto native = read_safetensors(back);
    EXPECT_TRUE(torch::equal(native.at("blocks.1.attn.qkv.weight"), load_pth(c).state_dict().at("blocks.1.attn.qkv.weight")));
    EXPECT_FALSE(native.contains("y_embedder.y_embedding"));
  }
  auto r = run_cli("convert --diffusers --from " + golden("dit/dit.safetensors") + " --to " + temp_path("dit_diff"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no diffusers layout"), std::string::npos) << r.output;
}

// A diffusers folder has no learned null caption: the caption file gives it explicitly (null_y with
// the prompts' masks, what the reference's unconditional rows are), and the runs are the same.
TEST(PixArt, SampleCommandFromTheDiffusersFolderReproducesBothSamplers) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    const std::string cs(c);
    auto dpms = read(cs + "/sample_dpms.safetensors");
    StateDict caps;
    caps.set("caption_embs", dpms.at("caption_embs"));
    caps.set("emb_masks", dpms.at("emb_masks"));
    caps.set("uncond_embs", dpms.at("null_y"));
    caps.set("uncond_masks", dpms.at("emb_masks"));
    const std::string file = temp_path("diffusers_captions_" + cs + ".safetensors");
    write_safetensors(file, caps);
    expect_sample_command_reproduces(cs, "--ckpt " + golden("pixart/" + cs + "/transformer"), file);
  }
}

// `info` names the class, the micro-conditions and the null caption each layout carries.
TEST(PixArt, InfoDescribesEachLayout) {
  const auto ctor = case_json("ms").at("original_constructor");
  const auto heads = ctor.at("num_heads").get<int64_t>();
  auto r = run_cli("info --ckpt " + golden("pixart/ms/pixart.pth") + " --num-heads " + std::to_string(heads) +
                   " --lewei-scale " + std::to_string(ctor.at("lewei_scale").get<double>()));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string heads_line = "heads:       " + std::to_string(heads) + "\n";
  for (auto s : {"PixArtMS (micro-conditions img_hw, aspect_ratio)", "null caption: learned", heads_line.c_str()})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  r = run_cli("info --ckpt " + golden("pixart/base/transformer"));
  ASSERT_EQ(r.status, 0) << r.output;
  for (auto s : {"layout:      diffusers", "class:       PixArt\n", "null caption: none (diffusers layout"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
}

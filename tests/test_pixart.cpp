// PixArt-α and SparseDiT-PixArt against the original code's and diffusers' outputs (golden/pixart,
// base/ = the 256/512 architecture, ms/ = 1024-MS with micro-conditions and non-square latents).
// Every size comes from the golden's case.json and weights.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "cli_runner.h"
#include "diffusion/dpm_solver.h"
#include "diffusion/gaussian_diffusion.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/convert.h"
#include "models/flops.h"
#include "models/guidance.h"
#include "models/model.h"
#include "models/pixart.h"
#include "testing.h"
#include "util/error.h"

using namespace sdit;

namespace {

constexpr double kForwardTol = 1e-5, kSampleTol = 1e-4;
const char* kCases[] = {"base", "ms"};

StateDict read(const std::string& rel) { return read_safetensors(golden("pixart/" + rel)); }

nlohmann::json case_json(const std::string& c) {
  std::ifstream f(golden("pixart/" + c + "/case.json"));
  return nlohmann::json::parse(f);
}

// What a .pth cannot say: the head count and lewei_scale, from the constructor the golden used.
LoadOptions load_options(const std::string& c) {
  const auto ctor = case_json(c).at("original_constructor");
  LoadOptions o;
  o.num_heads = ctor.at("num_heads").get<int64_t>();
  o.config["lewei_scale"] = ctor.at("lewei_scale").get<double>();
  return o;
}

Model load_pth(const std::string& c) { return Model::load(golden("pixart/" + c + "/pixart.pth"), load_options(c)); }
Model load_diffusers(const std::string& c) { return Model::load(golden("pixart/" + c + "/transformer")); }

Conditioning captions(const StateDict& f, const std::string& p, bool with_mask = true) {
  Conditioning c;
  c.context = f.at(p + "_y");
  if (with_mask) c.context_mask = f.at(p + "_mask");
  if (f.contains(p + "_hw")) c.img_hw = f.at(p + "_hw"), c.aspect_ratio = f.at(p + "_ar");
  return c;
}

void expect_forward_matches(Model& m, const StateDict& f, bool ms) {
  torch::NoGradGuard ng;
  EXPECT_LT(rel_l2(m.forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd")), f.at("fwd_out")), kForwardTol);
  EXPECT_LT(rel_l2(m.forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd", false)), f.at("fwd_out_nomask")),
            kForwardTol);
  if (ms) {
    Conditioning c;
    c.context = f.at("ns_y"), c.context_mask = f.at("ns_mask"), c.img_hw = f.at("ns_hw"), c.aspect_ratio = f.at("ns_ar");
    EXPECT_LT(rel_l2(m.forward(f.at("ns_x"), f.at("ns_t"), c), f.at("ns_out")), kForwardTol);
  }
}

}  // namespace

TEST(PixArt, TimestepEmbeddingAndSharedAdaLNMatchReference) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    auto f = read(std::string(c) + "/forward.safetensors");
    auto m = load_pth(c);
    auto& net = *m.module().as<PixArtImpl>();
    torch::NoGradGuard ng;
    EXPECT_LT(rel_l2(timestep_embedding(f.at("temb_t")), f.at("temb_freq256")), kForwardTol);
    const auto t_emb = net.t_embedder->forward(f.at("temb_t"));
    EXPECT_LT(rel_l2(t_emb, f.at("t_embedder_out")), kForwardTol);
    EXPECT_LT(rel_l2(net.t_block->forward(t_emb), f.at("t_block_out")), kForwardTol);
  }
}

TEST(PixArt, ForwardAndEveryTapMatchTheOriginalFromPth) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    const bool ms = std::string(c) == "ms";
    auto f = read(std::string(c) + "/forward.safetensors");
    auto m = load_pth(c);
    EXPECT_EQ(m.name(), "PixArt");
    EXPECT_EQ(m.latent().fixed_size, !ms);
    EXPECT_EQ(m.latent().size_conditions, ms);
    EXPECT_EQ(m.spec().config.at("depth").get<int64_t>(), case_json(c).at("original_constructor").at("depth"));
    EXPECT_EQ(m.parameter_count(), case_json(c).at("n_parameters").get<int64_t>() +
                                       m.module().as<PixArtImpl>()->pos_embed.numel() +
                                       m.module().as<PixArtImpl>()->y_embedder->y_embedding.numel());
    expect_forward_matches(m, f, ms);
    PixArtTaps taps;
    torch::NoGradGuard ng;
    m.module().as<PixArtImpl>()->forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd"), {}, &taps);
    EXPECT_LT(rel_l2(taps.x_embedder, f.at("tap_x_embedder")), kForwardTol);
    EXPECT_LT(rel_l2(taps.pos_embed, f.at("pos_embed")), 1e-6);
    EXPECT_LT(rel_l2(taps.t_embedder, f.at("tap_t_embedder")), kForwardTol);
    EXPECT_LT(rel_l2(taps.t_block, f.at("tap_t_block")), kForwardTol);
    EXPECT_LT(rel_l2(taps.y_embedder, f.at("tap_y_embedder")), kForwardTol);
    if (ms) {
      EXPECT_LT(rel_l2(taps.csize_embedder, f.at("tap_csize_embedder")), kForwardTol);
      EXPECT_LT(rel_l2(taps.ar_embedder, f.at("tap_ar_embedder")), kForwardTol);
    }
    ASSERT_EQ(static_cast<int64_t>(taps.blocks.size()), m.spec().config.at("depth").get<int64_t>());
    for (size_t i = 0; i < taps.blocks.size(); ++i)
      EXPECT_LT(rel_l2(taps.blocks[i], f.at("tap_block" + std::to_string(i))), kForwardTol) << "block " << i;
    EXPECT_LT(rel_l2(taps.final_layer, f.at("tap_final_layer")), kForwardTol);
  }
}

TEST(PixArt, NonSquareMsGridRecomputesPositionsAndUnpatchifies) {
  auto f = read("ms/forward.safetensors");
  auto m = load_pth("ms");
  PixArtTaps taps;
  Conditioning c;
  c.context = f.at("ns_y"), c.context_mask = f.at("ns_mask"), c.img_hw = f.at("ns_hw"), c.aspect_ratio = f.at("ns_ar");
  torch::NoGradGuard ng;
  auto out = m.module().as<PixArtImpl>()->forward(f.at("ns_x"), f.at("ns_t"), c, {}, &taps);
  EXPECT_LT(rel_l2(taps.pos_embed, f.at("ns_pos_embed")), 1e-6);
  EXPECT_LT(rel_l2(out, f.at("ns_out")), kForwardTol);
  EXPECT_LT(rel_l2(out, f.at("diffusers_ns_out")), kForwardTol);
}

TEST(PixArt, DiffusersFolderComputesTheSameFunction) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    const bool ms = std::string(c) == "ms";
    auto f = read(std::string(c) + "/forward.safetensors");
    auto m = load_diffusers(c);
    EXPECT_EQ(m.spec().config.at("null_caption"), false);  // diffusers drops y_embedding
    EXPECT_EQ(m.spec().config.at("micro_conditions"), ms);
    expect_forward_matches(m, f, ms);
    torch::NoGradGuard ng;
    EXPECT_LT(rel_l2(m.forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd")), f.at("diffusers_fwd_out")),
              kForwardTol);
    // The learned null caption is not in this layout: guidance needs an explicit unconditional caption.
    EXPECT_THROW(m.null_conditioning(captions(f, "fwd")), Error);
  }
}

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

TEST(PixArt, ForwardWithCfgMatchesReferenceIncludingTheMsMaskQuirk) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    const bool ms = std::string(c) == "ms";
    auto f = read(std::string(c) + "/forward.safetensors");
    auto m = load_pth(c);
    DenoiseFn fn = [&](const torch::Tensor& x, const torch::Tensor& t, const Conditioning& cc) {
      return m.forward(x, t, cc);
    };
    // PixArtMS.forward_with_cfg drops the mask (all tokens attended); PixArt's passes it (2 rows,
    // repeated by the model onto the null-caption rows).
    Conditioning cond = captions(f, "cfg", !ms);
    GuidanceOptions g;
    g.scale = f.at("cfg_scale").item<double>();
    g.guided_channels = 3;
    torch::NoGradGuard ng;
    EXPECT_LT(rel_l2(forward_with_cfg(fn, f.at("cfg_x"), f.at("cfg_t"), cond, g), f.at("cfg_out")), kForwardTol);
  }
}

TEST(PixArt, NullCaptionIsTheLearnedEmbeddingWithThePromptsMask) {
  auto f = read("base/forward.safetensors");
  auto m = load_pth("base");
  auto cond = captions(f, "fwd");
  auto null = m.null_conditioning(cond);
  const auto& y = m.module().as<PixArtImpl>()->y_embedder->y_embedding;
  EXPECT_TRUE(torch::equal(null.context.squeeze(1)[0], y));
  EXPECT_TRUE(torch::equal(null.context_mask, cond.context_mask));
  // fwd row 2 is that null caption with a non-prefix mask.
  EXPECT_TRUE(torch::equal(f.at("fwd_y")[2][0], y));
}

TEST(PixArt, InputErrorsNameShapesAndKeys) {
  auto f = read("base/forward.safetensors");
  auto m = load_pth("base");
  torch::NoGradGuard ng;
  auto x = f.at("fwd_x");
  auto c = captions(f, "fwd");
  EXPECT_THROW(m.forward(torch::zeros({3, 4, 10, 10}), f.at("fwd_t"), c), Error);  // fixed 8x8
  auto bad = c;
  bad.context = c.context.narrow(3, 0, 5);
  EXPECT_THROW(m.forward(x, f.at("fwd_t"), bad), Error);
  auto empty_row = c;
  empty_row.context_mask = c.context_mask.clone();
  empty_row.context_mask[1].zero_();
  EXPECT_THROW(m.check_conditioning(empty_row, 3), Error);
  auto ms = load_pth("ms");
  auto mf = read("ms/forward.safetensors");
  auto no_sizes = captions(mf, "fwd");
  no_sizes.img_hw = torch::Tensor();
  EXPECT_THROW(ms.forward(mf.at("fwd_x"), mf.at("fwd_t"), no_sizes), Error);
  EXPECT_THROW(ms.check_conditioning(no_sizes, 3), Error);
}

TEST(PixArt, DpmSolverScheduleFeedsTheReferenceModelTimes) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    auto s = read(std::string(c) + "/sample_dpms.safetensors");
    NoiseScheduleVP ns(linear_betas(1000));
    const int64_t S = s.at("model_t").size(0);
    EXPECT_TRUE(torch::equal(dpm_solver_times(ns, S), s.at("timesteps")));
    const auto times = dpm_solver_model_times(ns, S);
    for (int64_t i = 0; i < S; ++i) EXPECT_EQ(static_cast<float>(times[i]), s.at("model_t")[i][0].item<float>());
  }
}

// The reference's recorded model outputs replayed through our solver: the solver alone, exactly.
TEST(PixArt, DpmSolverUpdatesReproduceTheReferenceIntermediates) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    auto s = read(std::string(c) + "/sample_dpms.safetensors");
    NoiseScheduleVP ns(linear_betas(1000));
    const auto outs = s.at("model_out");
    const int64_t S = outs.size(0), n = s.at("noise").size(0);
    int64_t call = 0;
    EpsFn replay = [&](const torch::Tensor& x, const torch::Tensor&) {
      auto o = outs[call++];
      auto u = o.narrow(0, 0, n), cc = o.narrow(0, n, n);
      return u + 4.5 * (cc - u);
    };
    std::vector<torch::Tensor> inter;
    DpmSolverOptions opt;
    opt.steps = S;
    auto x = dpm_solver_sample(ns, replay, s.at("noise"), opt);
    EXPECT_EQ(call, S);
    EXPECT_LT(rel_l2(x, s.at("samples")), 1e-6);
  }
}

TEST(PixArt, SampleCommandReproducesDpmSolverAndIddpm) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    const bool ms = std::string(c) == "ms";
    const auto cj = case_json(c);
    const auto ctor = cj.at("original_constructor");
    const std::string common = "--ckpt " + golden(std::string("pixart/") + c + "/pixart.pth") + " --num-heads " +
                               std::to_string(ctor.at("num_heads").get<int64_t>()) + " --lewei-scale " +
                               std::to_string(ctor.at("lewei_scale").get<double>()) + " --caption-embeddings " +
                               golden(std::string("pixart/") + c + "/sample_dpms.safetensors") + " -s " +
                               std::to_string(cj.at("seeds").at("sampling torch.manual_seed").get<int64_t>()) +
                               (ms ? " -H 64 -W 128" : "") + " -q";
    auto dpms = read(std::string(c) + "/sample_dpms.safetensors");
    const std::string out = temp_path(std::string(c) + "_dpms.safetensors");
    auto r = run_cli("sample " + common + " --steps " + std::to_string(dpms.at("model_t").size(0)) +
                     " --save-latents " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_LT(rel_l2(read_safetensors(out).at("latents"), dpms.at("samples")), kSampleTol);

    auto iddpm = read(std::string(c) + "/sample_iddpm.safetensors");
    const std::string out2 = temp_path(std::string(c) + "_iddpm.safetensors");
    r = run_cli("sample " + common + " --sampler iddpm --steps " +
                std::to_string(iddpm.at("timestep_map").size(0)) + (ms ? " --cfg-drop-mask" : "") +
                " --save-latents " + out2);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_LT(rel_l2(read_safetensors(out2).at("latents"), iddpm.at("cond_samples")), kSampleTol);
  }
}

TEST(PixArt, FlopsMatchTheDerivation) {
  const Family& f = family("PixArt");
  auto spec = f.apply_overrides(preset_spec("PixArt-XL/2"), [] {
    SpecOverrides o;
    o.height = o.width = 32;
    return o;
  }());
  const Grid dense = square_grid(16);
  EXPECT_NEAR(f.flops(spec, dense, dense).gmacs(), 149.05, 0.005);
  spec.layout = SparseLayout::parse("2:4x1,3,1,1:2", 28);
  EXPECT_NEAR(f.flops(spec, dense, square_grid(8)).gmacs(), 89.58, 0.005);
  EXPECT_NEAR(f.flops(spec, dense, square_grid(6)).gmacs(), 80.92, 0.005);
  EXPECT_NEAR(f.flops(spec, dense, square_grid(10)).gmacs(), 100.78, 0.005);
}

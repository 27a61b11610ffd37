// PixArt-α and SparseDiT-PixArt against the original code's and diffusers' outputs (golden/pixart,
// base/ = the 256/512 architecture, ms/ = 1024-MS with micro-conditions and non-square latents).
// Every size comes from the golden's case.json and weights.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "diffusion/dpm_solver.h"
#include "data/latent_dataset.h"
#include "diffusion/gaussian_diffusion.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/convert.h"
#include "models/flops.h"
#include "models/guidance.h"
#include "models/load.h"
#include "models/model.h"
#include "models/pixart.h"
#include "pixart_golden.h"
#include "testing.h"
#include "train/trainer.h"
#include "util/error.h"

using namespace sdit;
using namespace sdit::pixart_test;

namespace {

void expect_forward_matches(Model& m, const StateDict& f, bool ms) {
  torch::NoGradGuard ng;
  EXPECT_REL(m.forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd")), f.at("fwd_out"), kForwardTol);
  EXPECT_REL(m.forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd", false)), f.at("fwd_out_nomask"), kForwardTol);
  if (ms) {
    Conditioning c;
    c.context = f.at("ns_y"), c.context_mask = f.at("ns_mask"), c.img_hw = f.at("ns_hw"), c.aspect_ratio = f.at("ns_ar");
    EXPECT_REL(m.forward(f.at("ns_x"), f.at("ns_t"), c), f.at("ns_out"), kForwardTol);
  }
}


// Every tap_* of forward.safetensors (x_embedder, pos_embed, t/size embedders, t0, captions, blocks, final layer).
void expect_taps_match(Model& m, const StateDict& f, bool ms) {
  PixArtTaps taps;
  torch::NoGradGuard ng;
  m.module().as<PixArtImpl>()->forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd"), {}, &taps);
  EXPECT_REL(taps.x_embedder, f.at("tap_x_embedder"), kForwardTol);
  EXPECT_REL(taps.pos_embed, f.at("pos_embed"), 1e-6);
  EXPECT_REL(taps.t_embedder, f.at("tap_t_embedder"), kForwardTol);
  EXPECT_REL(taps.t_block, f.at("tap_t_block"), kForwardTol);
  EXPECT_REL(taps.y_embedder, f.at("tap_y_embedder"), kForwardTol);
  if (ms) {
    EXPECT_REL(taps.csize_embedder, f.at("tap_csize_embedder"), kForwardTol);
    EXPECT_REL(taps.ar_embedder, f.at("tap_ar_embedder"), kForwardTol);
  }
  ASSERT_EQ(static_cast<int64_t>(taps.blocks.size()), m.spec().config.at("depth").get<int64_t>());
  for (size_t i = 0; i < taps.blocks.size(); ++i)
    expect_rel(taps.blocks[i], f.at("tap_block" + std::to_string(i)), kForwardTol, ("tap_block" + std::to_string(i)).c_str());
  EXPECT_REL(taps.final_layer, f.at("tap_final_layer"), kForwardTol);
}
}  // namespace

TEST(PixArt, TimestepEmbeddingAndSharedAdaLNMatchReference) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    auto f = read(std::string(c) + "/forward.safetensors");
    auto m = load_pth(c);
    auto& net = *m.module().as<PixArtImpl>();
    torch::NoGradGuard ng;
    EXPECT_REL(timestep_embedding(f.at("temb_t")), f.at("temb_freq256"), kForwardTol);
    const auto t_emb = net.t_embedder->forward(f.at("temb_t"));
    EXPECT_REL(t_emb, f.at("t_embedder_out"), kForwardTol);
    EXPECT_REL(net.t_block->forward(t_emb), f.at("t_block_out"), kForwardTol);
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
    expect_taps_match(m, f, ms);
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
  EXPECT_REL(taps.pos_embed, f.at("ns_pos_embed"), 1e-6);
  EXPECT_REL(out, f.at("ns_out"), kForwardTol);
  EXPECT_REL(out, f.at("diffusers_ns_out"), kForwardTol);
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
    expect_taps_match(m, f, ms);
    torch::NoGradGuard ng;
    EXPECT_REL(m.forward(f.at("fwd_x"), f.at("fwd_t"), captions(f, "fwd")), f.at("diffusers_fwd_out"), kForwardTol);
    // The learned null caption is not in this layout: guidance needs an explicit unconditional caption.
    EXPECT_THROW(m.null_conditioning(captions(f, "fwd")), Error);
  }
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
    EXPECT_REL(forward_with_cfg(fn, f.at("cfg_x"), f.at("cfg_t"), cond, g), f.at("cfg_out"), kForwardTol);
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
    EXPECT_REL(x, s.at("samples"), 1e-6);
  }
}

TEST(PixArt, SampleCommandReproducesDpmSolverAndIddpm) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    const auto ctor = case_json(c).at("original_constructor");
    // The .pth's learned null caption is the unconditional branch (PixArt's inference.py).
    expect_sample_command_reproduces(c, "--ckpt " + golden(std::string("pixart/") + c + "/pixart.pth") +
                                            " --num-heads " + std::to_string(ctor.at("num_heads").get<int64_t>()) +
                                            " --lewei-scale " + std::to_string(ctor.at("lewei_scale").get<double>()),
                                     golden(std::string("pixart/") + c + "/sample_dpms.safetensors"));
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
  // The CLI averages over the family's default run (20 DPM-Solver steps, 5 per stage of r in [0.61, 0.86]).
  auto r = run_cli("flops --model PixArt-XL/2 --image-size 256 --sparse --json");
  ASSERT_EQ(r.status, 0) << r.output;
  auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(j.at("sampling_steps").get<int64_t>(), 20);
  EXPECT_NEAR(j.at("gmacs").get<double>(), 91.54, 0.005);
}

namespace {

std::string sample_args(const std::string& c, const std::string& ckpt) {
  const auto ctor = case_json(c).at("original_constructor");
  return "--ckpt " + ckpt + " --caption-embeddings " + golden("pixart/" + c + "/sample_dpms.safetensors") +
         (c == "ms" ? " -H 64 -W 128" : "") + " -s 3 --steps 8";
}

}  // namespace

// convert keeps every block's cross_attn and scale_shift_table (generic suffix copy) and the
// embedders with the learned null caption; the SparseDiT-PixArt then samples with a density schedule
// (non-square sparse grids for the MS model's 4x8 token grid), with either sampler.
TEST(SparseDiTPixArt, ConvertedGoldenModelSamplesWithTheDensitySchedule) {
  for (auto c : kCases) {
    SCOPED_TRACE(c);
    const auto ctor = case_json(c).at("original_constructor");
    const std::string out = temp_path(std::string("sparse_pixart_") + c + ".safetensors");
    auto r = run_cli("convert --from " + golden(std::string("pixart/") + c + "/pixart.pth") + " --to " + out +
                     " --num-heads " + std::to_string(ctor.at("num_heads").get<int64_t>()) + " --lewei-scale " +
                     std::to_string(ctor.at("lewei_scale").get<double>()) + " --layout 0:1x1,1,1,0:0 -q");
    ASSERT_EQ(r.status, 0) << r.output;
    auto sd = read_safetensors(out);
    for (auto k : {"dumbbell_blocks.0.token_merge_blocks.0.cross_attn.kv_linear.weight",
                   "dumbbell_blocks.0.semantic_blocks.0.scale_shift_table",
                   "dumbbell_blocks.0.token_recover_blocks.0.merged_layer2.weight", "y_embedder.y_embedding", "t_block.1.bias"})
      EXPECT_TRUE(sd.contains(k)) << k;
    auto dense = load_pth(c);
    auto dense_sd = dense.state_dict();
    EXPECT_TRUE(torch::equal(sd.at("dumbbell_blocks.0.token_recover_blocks.0.cross_attn.q_linear.weight"),
                             dense_sd.at("blocks.2.cross_attn.q_linear.weight")));
    auto m = Model::load(out);  // heads and lewei scale recorded in the metadata
    EXPECT_EQ(m.name(), "SparseDiT-PixArt");
    for (auto sampler : {"dpm-solver", "iddpm"}) {
      r = run_cli("sample " + sample_args(c, out) + " --sampler " + sampler +
                  " --density range:0.3,0.8 --save-latents " + temp_path("sparse_lat.safetensors"));
      ASSERT_EQ(r.status, 0) << r.output;
      EXPECT_NE(r.output.find("grid sides:"), std::string::npos) << r.output;
      auto lat = read_safetensors(temp_path("sparse_lat.safetensors")).at("latents");
      EXPECT_TRUE(torch::isfinite(lat).all().item<bool>());
    }
    // A dense PixArt refuses a density schedule.
    r = run_cli("sample " + sample_args(c, golden(std::string("pixart/") + c + "/pixart.pth")) + " --num-heads " +
                std::to_string(ctor.at("num_heads").get<int64_t>()) + " --density range:0.3,0.8");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.output.find("needs a SparseDiT"), std::string::npos) << r.output;
  }
}

TEST(PixArt, SampleCommandRefusesBadTextInput) {
  const std::string pth = golden("pixart/base/pixart.pth");
  const std::string caps = golden("pixart/base/sample_dpms.safetensors");
  auto expect_error = [](const std::string& args, const std::string& needle) {
    auto r = run_cli("sample " + args);
    EXPECT_NE(r.status, 0) << args;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(r.output.find("terminate"), std::string::npos) << r.output;
  };
  expect_error("--ckpt " + pth + " --num-heads 4", "exactly one of -p/--prompt");
  expect_error("--ckpt " + pth + " --num-heads 4 --caption-embeddings " + pth, "holds no caption features");
  expect_error("--ckpt " + pth + " --num-heads 4 --caption-embeddings " + caps + " -W 128", "takes 8x8 latents");
  expect_error("--ckpt " + pth + " --num-heads 4 --caption-embeddings " + caps + " --snap-to-bucket", "no aspect-ratio buckets");
  expect_error("--ckpt " + pth + " --num-heads 4 --caption-embeddings " + caps + " --cfg-drop-mask", "passes the masks");
  expect_error("--ckpt " + golden("pixart/base/transformer") + " --caption-embeddings " + caps, "uncond_embs");
  expect_error("--ckpt " + pth + " --num-heads 4 --caption-embeddings " + caps + " --ar wide", "--ar must be");
  expect_error("--ckpt " + pth + " --num-heads 4 -p \"a cat\"", "T5");
  expect_error("--ckpt " + pth + " --num-heads 4 --caption-embeddings " + caps + " --sampler dpm-solver --steps ddim5",
               "number of steps");
  // The diffusers layout with an explicit unconditional caption in the file runs (its own masks).
  const std::string with_uncond = temp_path("with_uncond.safetensors");
  auto s = read_safetensors(caps);
  s.set("uncond_embs", s.at("null_y"));
  s.set("uncond_masks", s.at("emb_masks"));
  write_safetensors(with_uncond, s);
  auto r = run_cli("sample --ckpt " + golden("pixart/base/transformer") + " --caption-embeddings " + with_uncond +
                   " --steps 8 -s 0 --save-latents " + temp_path("diffusers_lat.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("uncond_embs"), std::string::npos) << r.output;
  // With the file's null_y and the prompts' masks this is the reference run from the diffusers folder.
  EXPECT_REL(read_safetensors(temp_path("diffusers_lat.safetensors")).at("latents"), s.at("samples"), kSampleTol);
}

TEST(PixArt, MsBucketsFeedTheClosestKeyOrTheExactRatio) {
  const auto& b = closest_bucket(768, 1344);
  EXPECT_STREQ(b.key, "0.57");
  EXPECT_STREQ(closest_bucket(1024, 1024).key, "1.0");
  EXPECT_STREQ(closest_bucket(100, 1000).key, "0.25");
  auto m = load_pth("ms");
  const Family& f = family("PixArt");
  auto bucket = f.size_conditions(m.spec(), {768, 1344, false});
  EXPECT_FLOAT_EQ(bucket.aspect_ratio.item<float>(), 0.57f);
  EXPECT_TRUE(torch::equal(bucket.img_hw, torch::tensor({768.f, 1344.f}).view({1, 2})));
  EXPECT_FLOAT_EQ(f.size_conditions(m.spec(), {768, 1344, true}).aspect_ratio.item<float>(), 768.f / 1344.f);
  // The released 1024-MS model snaps to the table's sizes; the tiny golden model (96 px) to its scale.
  auto xl = f.apply_overrides(preset_spec("PixArt-XL/2"), [] {
    SpecOverrides o;
    o.height = o.width = 128;
    return o;
  }());
  EXPECT_EQ(xl.config.at("micro_conditions").get<bool>(), true);
  EXPECT_EQ(xl.config.at("lewei_scale").get<double>(), 2.0);
  auto snapped = f.snap_to_bucket(xl, {760, 1340, false});  // h/w 0.567: bucket 0.57
  EXPECT_EQ(snapped.height, 768);
  EXPECT_EQ(snapped.width, 1344);
  EXPECT_THROW(f.snap_to_bucket(load_pth("base").spec(), {64, 64, false}), Error);
}

// Caption dropout in training mode replaces whole captions by the learned null caption (the caption
// keeps its mask): with probability 1 a training forward is the eval forward on the null caption.
TEST(PixArt, CaptionDropoutTrainsTowardsTheNullCaption) {
  auto f = read("base/forward.safetensors");
  auto src = load_pth("base");
  ModelSpec spec = src.spec();
  spec.config["class_dropout_prob"] = 1.0;
  Model m = Model::build(spec);
  load_state_dict(m.module(), src.state_dict());
  torch::NoGradGuard ng;
  auto c = captions(f, "fwd");
  m.train(true);
  auto trained = m.forward(f.at("fwd_x"), f.at("fwd_t"), c);
  m.train(false);
  auto null = m.forward(f.at("fwd_x"), f.at("fwd_t"), m.null_conditioning(c));
  EXPECT_LT(rel_l2(trained, null), 1e-6);
  EXPECT_GT(rel_l2(m.forward(f.at("fwd_x"), f.at("fwd_t"), c), null), 1e-2);
}

namespace {

// 16 random 4x8x8 latents with random 8-token captions of 32 channels (the golden base model's sizes).
std::string captioned_dataset() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = temp_path("captioned");
  std::filesystem::remove_all(dir);
  LatentDatasetWriter::Options o;
  o.classes = {"images"};
  o.latent_shape = {4, 8, 8};
  o.caption_tokens = 8;
  o.caption_channels = 32;
  o.caption_encoder = "random";
  LatentDatasetWriter w(dir, o, /*overwrite=*/true);
  torch::manual_seed(5);
  auto mask = (torch::arange(8).view({1, 8}) < torch::randint(1, 9, {16, 1})).to(torch::kLong);
  w.add(torch::randn({16, 4, 8, 8}), torch::zeros({16}, torch::kLong), torch::randn({16, 8, 32}), mask);
  w.finish();
  return dir;
}

}  // namespace

TEST(PixArt, CaptionedDatasetRoundTripsAndIsChecked) {
  auto ds = LatentDataset::open(captioned_dataset());
  ASSERT_TRUE(ds.captioned());
  EXPECT_EQ(ds.captions.sizes(), (std::vector<int64_t>{16, 8, 32}));
  EXPECT_EQ(ds.caption_mask.sizes(), (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(ds.caption_encoder, "random");
  LatentDatasetWriter::Options o;
  o.classes = {"images"};
  o.latent_shape = {4, 8, 8};
  o.caption_tokens = 8;
  o.caption_channels = 32;
  LatentDatasetWriter w(temp_path("bad_captions"), o, true);
  EXPECT_THROW(w.add(torch::randn({2, 4, 8, 8}), torch::zeros({2}, torch::kLong)), Error);
  EXPECT_THROW(w.add(torch::randn({2, 4, 8, 8}), torch::zeros({2}, torch::kLong), torch::randn({2, 8, 31}),
                     torch::ones({2, 8}, torch::kLong)),
               Error);
}

// Fine-tuning the golden PixArt, and its SparseDiT-PixArt (multi-density micro-batches), on captioned
// latents; then the exported weights sample. A fresh tiny PixArt trains from the preset too.
TEST(PixArt, TrainFineTunesPixArtAndSparseDiTPixArtOnCaptions) {
  for (bool sparse : {false, true}) {
    SCOPED_TRACE(sparse ? "sparse" : "dense");
    TrainOptions o;
    o.data = captioned_dataset();
    o.init_from = golden("pixart/base/pixart.pth");
    o.num_heads = 4;
    o.sparse = sparse;
    if (sparse) o.layout = "0:1x1,1,1,0:0", o.density = "sides:4,3,2,1";
    o.global_batch_size = 8;
    o.lr = 1e-3;
    o.steps = 3;
    o.ckpt_every = 0;
    o.log_every = 1;
    o.seed = 1;
    o.results_dir = temp_path(sparse ? "train_sparse_pixart" : "train_pixart");
    std::filesystem::remove_all(o.results_dir);
    o.export_path = o.results_dir + "/export.safetensors";
    std::vector<double> losses;
    TrainHooks hooks;
    hooks.on_step = [&](const StepStats& s) { losses.push_back(s.loss); };
    auto tr = Trainer::start(o, hooks);
    EXPECT_EQ(tr.model().name(), sparse ? "SparseDiT-PixArt" : "PixArt");
    EXPECT_EQ(tr.intervals().size(), sparse ? 4u : 1u);
    tr.run();
    ASSERT_EQ(losses.size(), 3u);
    for (double l : losses) EXPECT_TRUE(std::isfinite(l));
    auto r = run_cli("sample --ckpt " + o.export_path + " --caption-embeddings " +
                     golden("pixart/base/sample_dpms.safetensors") + " --steps 4 -q --save-latents " +
                     temp_path("trained_lat.safetensors"));
    EXPECT_EQ(r.status, 0) << r.output;
  }
  TrainOptions o;
  o.data = captioned_dataset();
  o.model = "PixArt-XL/2";
  o.hidden_size = 48;
  o.depth = 2;
  o.num_heads = 4;
  o.global_batch_size = 4;
  o.steps = 2;
  o.ckpt_every = 0;
  o.results_dir = temp_path("train_pixart_scratch");
  std::filesystem::remove_all(o.results_dir);
  auto tr = Trainer::start(o);
  EXPECT_EQ(tr.model().spec().config.at("caption_channels").get<int64_t>(), 32);
  EXPECT_EQ(tr.model().spec().config.at("model_max_length").get<int64_t>(), 8);
  tr.run();
  // A PixArt cannot train on latents without captions.
  const std::string plain = temp_path("uncaptioned");
  {
    LatentDatasetWriter::Options po;
    po.classes = {"a", "b"};
    po.latent_shape = {4, 8, 8};
    LatentDatasetWriter w(plain, po, true);
    w.add(torch::randn({4, 4, 8, 8}), torch::zeros({4}, torch::kLong));
    w.finish();
  }
  TrainOptions bad;
  bad.data = plain;
  bad.init_from = golden("pixart/base/pixart.pth");
  bad.num_heads = 4;
  bad.global_batch_size = 4;
  bad.results_dir = temp_path("train_pixart_bad");
  std::filesystem::remove_all(bad.results_dir);
  try {
    Trainer::start(bad);
    ADD_FAILURE() << "a PixArt trained on latents without captions";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("captions"), std::string::npos) << e.what();
  }
}


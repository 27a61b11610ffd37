// Latte (class-conditional and unconditional) against the outputs of Vchitect/Latte's own code
// (golden/latte): the forward and every intermediate, forward_with_cfg, the training losses, and
// sample.py's DDPM and DDIM runs through `sparsedit sample`; then SparseDiT-Latte.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>

#include "cli_runner.h"
#include "diffusion/density_schedule.h"
#include "diffusion/gaussian_diffusion.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/video.h"
#include "models/convert.h"
#include "models/block.h"
#include "models/guidance.h"
#include "models/latte.h"
#include "models/layers.h"
#include "models/model.h"
#include "model_testing.h"
#include "testing.h"
#include "util/error.h"

using namespace sdit;
using namespace sdit::testing_helpers;

namespace {

constexpr double kForwardTol = 1e-5, kSampleTol = 1e-4;

StateDict read(const std::string& rel) { return read_safetensors(golden("latte/" + rel)); }

// Every weights file of a golden model; head counts cannot be read from shapes (README: 4 heads).
std::vector<std::string> weight_files(const std::string& tag) {
  if (tag == "cond") return {"latte/latte_cond.safetensors", "latte/latte_cond.pt"};
  return {"latte/latte_uncond.pt"};
}

LatteImpl& net(Model& m) { return dynamic_cast<LatteImpl&>(m.module()); }

// rel_l2 below tol, printed so that the test log records the measured error.
void expect_close(const std::string& what, const torch::Tensor& got, const torch::Tensor& ref, double tol) {
  const double e = rel_l2(got, ref);
  std::cout << "[ latte ] " << what << ": rel L2 " << e << "\n";
  EXPECT_LT(e, tol) << what;
}

torch::Tensor forward(Model& m, const StateDict& f, const std::string& p) {
  Conditioning c;
  if (f.contains(p + "_y")) c.labels = f.at(p + "_y");
  torch::NoGradGuard ng;
  return m.forward(f.at(p + "_x"), f.at(p + "_t"), c);
}

}  // namespace

TEST(Latte, EmbeddingTablesMatchReference) {
  for (auto tag : {"cond", "uncond"}) {
    SCOPED_TRACE(tag);
    auto f = read(std::string(tag) + "_forward.safetensors");
    const auto& pe = f.at("pos_embed");
    const auto& te = f.at("temp_embed");
    const int64_t side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pe.size(1)))));
    EXPECT_LT(rel_l2(sincos_pos_embed_2d(pe.size(2), side), pe), 1e-6);
    EXPECT_LT(rel_l2(sincos_pos_embed_1d(te.size(2), te.size(1)), te), 1e-6);
    EXPECT_LT(rel_l2(timestep_embedding(f.at("temb_t")), f.at("temb_freq256")), kForwardTol);
    auto m = Model::load(golden(weight_files(tag)[0]), heads(4));
    torch::NoGradGuard ng;
    EXPECT_LT(rel_l2(net(m).t_embedder->forward(f.at("temb_t")), f.at("temb_out")), kForwardTol);
  }
}

TEST(Latte, DetectsFramesClassesAndConditioningFromTheTensors) {
  auto cond = Model::load(golden("latte/latte_cond.safetensors"));  // heads from the config metadata
  EXPECT_EQ(cond.name(), "Latte");
  EXPECT_EQ(cond.latent().frames, 3);
  EXPECT_EQ(cond.latent().channel_axis, 2);
  EXPECT_EQ(cond.latent().cond, CondKind::ClassLabel);
  EXPECT_EQ(cond.latent().num_classes, 10);
  EXPECT_EQ(cond.latent().shape(2), (std::vector<int64_t>{2, 3, 4, 8, 8}));
  EXPECT_EQ(cond.spec().config.at("extras").get<int64_t>(), 2);
  auto uncond = Model::load(golden("latte/latte_uncond.pt"), heads(4));
  EXPECT_EQ(uncond.latent().frames, 4);
  EXPECT_EQ(uncond.latent().cond, CondKind::None);
  EXPECT_EQ(uncond.spec().config.at("extras").get<int64_t>(), 1);
  EXPECT_EQ(uncond.parameter_count(), 332128);  // case.json's num_params
  EXPECT_EQ(cond.parameter_count(), 332768);
  // Without metadata the head count must be given.
  EXPECT_THROW(Model::load(golden("latte/latte_uncond.pt")), Error);
}

// The forward, and every intermediate in the reference's own row layouts: spatial (b·F + f, n, d),
// temporal (b·N + n, f, d). Batch 3: the row orders only show at B > 1.
TEST(Latte, ForwardAndEveryIntermediateMatchReference) {
  for (auto tag : {"cond", "uncond"}) {
    auto f = read(std::string(tag) + "_forward.safetensors");
    for (const auto& file : weight_files(tag)) {
      SCOPED_TRACE(file);
      auto m = Model::load(golden(file), heads(4));
      const Grid g = m.grid();
      std::map<std::string, torch::Tensor> seen;
      net(m).set_trace([&](const std::string& name, const torch::Tensor& x) { seen[name] = x.detach().clone(); });
      auto out = forward(m, f, "fwd");
      net(m).set_trace({});
      expect_close(file + " fwd_out", out, f.at("fwd_out"), kForwardTol);
      const int64_t B = out.size(0);
      auto spatial = [&](const torch::Tensor& x) { return to_sequences(x, g, BlockAxis::Spatial); };
      auto temporal = [&](const torch::Tensor& x) { return to_sequences(x, g, BlockAxis::Temporal); };
      expect_close(file + " int_patch", spatial(seen.at("patch")), f.at("int_patch"), kForwardTol);
      expect_close(file + " int_block0", spatial(seen.at("block0")), f.at("int_block0"), kForwardTol);
      expect_close(file + " int_block1_in", temporal(seen.at("block1_in")), f.at("int_block1_in"), kForwardTol);
      expect_close(file + " int_block1", temporal(seen.at("block1")), f.at("int_block1"), kForwardTol);
      expect_close(file + " int_block2", spatial(seen.at("block2")), f.at("int_block2"), kForwardTol);
      expect_close(file + " int_block3", temporal(seen.at("block3")), f.at("int_block3"), kForwardTol);
      expect_close(file + " int_final", spatial(seen.at("final")), f.at("int_final"), kForwardTol);
      EXPECT_EQ(f.at("int_block1_in").size(0), B * g.per_frame());
    }
  }
}

TEST(Latte, ForwardWithCfgGuidesAllFourEpsChannelsOnAxisTwo) {
  auto f = read("cond_forward.safetensors");
  auto m = Model::load(golden("latte/latte_cond.safetensors"));
  DenoiseFn fn = [&](const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c) {
    return m.forward(x, t, c);
  };
  GuidanceOptions g;
  g.scale = f.at("cfg_scale").item<double>();
  g.guided_channels = -1;
  g.eps_channels = m.latent().channels;
  g.channel_axis = m.latent().channel_axis;
  torch::NoGradGuard ng;
  auto out = forward_with_cfg(fn, f.at("cfg_x"), f.at("cfg_t"), labels(f.at("cfg_y")), g);
  expect_close("cfg_out", out, f.at("cfg_out"), kForwardTol);
}

TEST(Latte, TrainingLossesMatchReference) {
  for (auto tag : {"cond", "uncond"}) {
    SCOPED_TRACE(tag);
    auto f = read(std::string(tag) + "_train_loss.safetensors");
    auto m = Model::load(golden(weight_files(tag).back()), heads(4));
    DiffusionOptions o;
    o.channel_axis = m.latent().channel_axis;
    GaussianDiffusion d(o);
    Conditioning c;
    if (f.contains("y")) c.labels = f.at("y");
    ModelFn fn = [&](const torch::Tensor& x, const torch::Tensor& t) { return m.forward(x, t, c); };
    torch::NoGradGuard ng;
    auto L = d.training_losses(fn, f.at("x_start"), f.at("t"), f.at("noise"));
    expect_close(std::string(tag) + " mse", L.mse, f.at("mse"), kForwardTol);
    expect_close(std::string(tag) + " vb", L.vb, f.at("vb"), kForwardTol);
    expect_close(std::string(tag) + " loss", L.loss, f.at("loss"), kForwardTol);
  }
}

// train.py's {model, ema} takes ema; a plain state dict and safetensors load too (find_model would
// refuse the plain one; we do not).
TEST(Latte, CheckpointLayoutsTakeEmaFirst) {
  auto f = read("cond_forward.safetensors");
  auto sd = load_checkpoint(golden("latte/latte_cond.pt"));
  auto plain = temp_path("latte_plain.safetensors");
  StateDict bare;
  for (const auto& k : sd.keys()) bare.set(k, sd.at(k));
  write_safetensors(plain, bare);
  auto m = Model::load(plain, heads(4));
  EXPECT_LT(rel_l2(forward(m, f, "fwd"), f.at("fwd_out")), kForwardTol);
}

TEST(Latte, BadInputsAreClearErrors) {
  auto m = Model::load(golden("latte/latte_cond.safetensors"));
  torch::NoGradGuard ng;
  auto x = torch::randn({1, 4, 4, 8, 8});  // 4 frames for a 3-frame model
  try {
    m.forward(x, torch::zeros({1}, torch::kLong), labels(torch::zeros({1}, torch::kLong)));
    FAIL() << "a wrong frame count must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("frame count is fixed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.check_conditioning(labels(torch::tensor({10}, torch::kLong)), 1), Error);
  auto cfg = m.spec().config;
  cfg["extras"] = 78;
  EXPECT_THROW(Model::build(ModelSpec{"Latte", cfg, std::nullopt}), Error);
  cfg["extras"] = 2;
  cfg["depth"] = 5;
  EXPECT_THROW(Model::build(ModelSpec{"Latte", cfg, std::nullopt}), Error);
}

TEST(Latte, PresetParameterCountsMatchTheArithmetic) {
  // docs/latte.md §2: Latte-S/2 at 16 × 256², unconditional and with UCF101's 101 classes.
  auto spec = preset_spec("Latte-S/2");
  EXPECT_EQ(spec.family, "Latte");
  auto count = [&](std::optional<int64_t> classes) {
    SpecOverrides o;
    o.num_classes = classes;
    return Model::build(family("Latte").apply_overrides(spec, o)).parameter_count();
  };
  const int64_t C = 384, N = 256, F = 16;
  const int64_t dit_s2 = 32963360 - (1000 + 1) * C;  // DiT-S/2 without its label table
  EXPECT_EQ(count(std::nullopt), dit_s2 + F * C);
  EXPECT_EQ(count(101), dit_s2 + F * C + 102 * C);
  (void)N;
}

// sample.py without the VAE (README "Sampling"): z first, random labels drawn after it, CFG 7 on all
// eps channels for the class-conditional model, create_diffusion("10") for DDPM and for DDIM.
TEST(LatteSample, CommandReproducesSamplePyRuns) {
  struct Case {
    std::string tag, sampler, labels;
  };
  for (const auto& c : {Case{"cond", "ddpm", "4,2"}, Case{"cond", "ddim", "4,2"}, Case{"cond", "ddpm", "random"},
                        Case{"cond", "ddim", "random"}, Case{"uncond", "ddpm", ""}, Case{"uncond", "ddim", ""}}) {
    SCOPED_TRACE(c.tag + " " + c.sampler + " " + c.labels);
    auto ref = read(c.tag + "_sample_" + c.sampler + ".safetensors");
    const std::string seed = ref.metadata.at("seed");
    const std::string ckpt = golden(weight_files(c.tag).back());
    std::string args = "sample -q --ckpt " + ckpt + " --num-heads 4 --steps 10 --sampler " + c.sampler + " -s " + seed +
                       " --vae none --save-latents ";
    const auto out = temp_path("latte_" + c.tag + "_" + c.sampler + (c.labels == "random" ? "_r" : "") + ".safetensors");
    args += out;
    if (c.labels == "random") args += " --class-labels random --num-samples 2";
    else if (!c.labels.empty()) args += " --class-labels " + c.labels;
    else args += " --num-samples 2";
    auto r = run_cli(args);
    ASSERT_EQ(r.status, 0) << r.output;
    auto got = read_safetensors(out);
    expect_close(c.tag + " " + c.sampler + " labels '" + c.labels + "' samples", got.at("latents"),
                 ref.at("cond_samples"), kSampleTol);
    if (c.tag == "cond") {
      EXPECT_EQ(got.metadata.at("class_labels"), "4,2");
    }
  }
}

TEST(LatteSample, UnconditionalModelsIgnoreGuidanceAndRefuseLabels) {
  const std::string ckpt = "--ckpt " + golden("latte/latte_uncond.pt") + " --num-heads 4 --steps 4 --vae none ";
  auto out = temp_path("uncond_cfg.safetensors");
  auto r = run_cli("sample " + ckpt + "--num-samples 1 --cfg-scale 7 --save-latents " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("samples without guidance"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unconditional (no guidance)"), std::string::npos) << r.output;
  auto plain = temp_path("uncond_plain.safetensors");
  ASSERT_EQ(run_cli("sample -q " + ckpt + "--num-samples 1 --save-latents " + plain).status, 0);
  EXPECT_TRUE(torch::equal(read_safetensors(out).at("latents"), read_safetensors(plain).at("latents")));
  r = run_cli("sample -q " + ckpt + "--class-labels 1,2");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unconditional"), std::string::npos) << r.output;
}

// ---- SparseDiT-Latte ---------------------------------------------------------------------------

namespace {

StateDict converted_cond(const SparseLayout& layout) {
  auto sd = native_state_dict(load_checkpoint(golden("latte/latte_cond.safetensors")));
  return convert_dense_to_sparse(sd, 64, 4, layout).sparse;
}

}  // namespace

TEST(SparseDiTLatte, DefaultLayoutsKeepGenAndRecoveryOnSpatialBlocks) {
  EXPECT_EQ(latte_default_layout(28).str(), "2:4x1,3,1,1:2");  // DiT-XL's split transfers block by block
  EXPECT_EQ(latte_default_layout(12).str(), "2:2x1,1,1,1:2");
  EXPECT_EQ(latte_default_layout(24).str(), "2:2x1,7,1,1:2");
  EXPECT_EQ(latte_default_layout(4).str(), "0:1x1,1,1,1:0");
  for (int64_t depth = 4; depth <= 40; depth += 2) {
    SCOPED_TRACE(depth);
    const auto l = latte_default_layout(depth);
    EXPECT_EQ(l.depth(), depth);
    EXPECT_NO_THROW(check_latte_layout(l, depth));
  }
  // DiT's default for depth 12 starts its SDTMs on block 1, a temporal block.
  try {
    check_latte_layout(SparseLayout::default_for_depth(12), 12);
    FAIL() << "a sparse-gen block on a temporal block must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("temporal block"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("2:2x1,1,1,1:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(latte_default_layout(5), Error);
}

TEST(SparseDiTLatte, ConversionSplitsQkvAndKeepsTheVideoEmbeddings) {
  const auto layout = latte_default_layout(4);
  const auto dense = load_checkpoint(golden("latte/latte_cond.safetensors"));
  const auto sd = converted_cond(layout);
  for (auto k : {"pos_embed", "temp_embed", "y_embedder.embedding_table.weight", "final_layer.linear.weight"})
    EXPECT_TRUE(torch::equal(sd.at(k), dense.at(k))) << k;
  const auto& qkv = dense.at("blocks.0.attn.qkv.weight");
  EXPECT_TRUE(torch::equal(sd.at("dumbbell_blocks.0.token_merge_blocks.0.attn.q.weight"), qkv.narrow(0, 0, 64)));
  EXPECT_TRUE(torch::equal(sd.at("dumbbell_blocks.0.token_recover_blocks.0.attn.kv.weight"),
                           dense.at("blocks.2.attn.qkv.weight").narrow(0, 64, 128)));
  EXPECT_TRUE(torch::equal(sd.at("dumbbell_blocks.0.semantic_blocks.0.attn.qkv.weight"), dense.at("blocks.1.attn.qkv.weight")));
  auto m = Model::from_state_dict(sd);
  EXPECT_EQ(m.name(), "SparseDiT-Latte");
  EXPECT_EQ(m.layout()->str(), layout.str());
  EXPECT_EQ(m.latent().frames, 3);
}

// temp_embed reaches the tokens once, before block 1, wherever block 1 sits: here it is the SDTM's
// sparse temporal block, so it is added on the sparse grid (pooled over frames for joint pooling).
TEST(SparseDiTLatte, TempEmbedIsAddedOnceBeforeBlockOneOnEveryGrid) {
  auto m = Model::from_state_dict(converted_cond(latte_default_layout(4)));
  auto f = read("cond_forward.safetensors");
  const auto te = f.at("temp_embed");  // (1, 3, 64)
  for (const Grid& g : {Grid{3, 4, 4}, Grid{3, 2, 3}, Grid{3, 1, 1}, Grid{2, 2, 2}, Grid{1, 3, 2}}) {
    SCOPED_TRACE(g.str());
    std::map<std::string, torch::Tensor> seen;
    net(m).set_trace([&](const std::string& name, const torch::Tensor& x) { seen[name] = x.detach().clone(); });
    torch::NoGradGuard ng;
    auto out = m.forward(f.at("fwd_x"), f.at("fwd_t"), labels(f.at("fwd_y")), g);
    net(m).set_trace({});
    EXPECT_EQ(out.sizes(), f.at("fwd_out").sizes());
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
    const auto added = (seen.at("block1_in") - seen.at("block0")).view({3, g.frames, g.per_frame(), 64});
    const auto want = pool_tokens(te, Grid{3, 1, 1}, Grid{g.frames, 1, 1}).view({1, g.frames, 1, 64});
    EXPECT_LT(rel_l2(added, want.expand_as(added)), 1e-6);
  }
}

TEST(SparseDiTLatte, ConvertRefusesGenBlocksOnTemporalBlocks) {
  auto out = temp_path("bad_layout.safetensors");
  auto r = run_cli("convert --from " + golden("latte/latte_cond.safetensors") + " --to " + out + " --layout 1:1x1,1,1,0:0");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("temporal block"), std::string::npos) << r.output;
}

// The end-to-end path of the issue: convert a dense Latte, sample with a density schedule, decode
// frame by frame with a VAE, write an MP4 (or WebP/GIF) and PNG frames; the video decodes back to
// the frames written.
TEST(SparseDiTLatte, ConvertedModelSamplesWithTheScheduleAndWritesAPlayableVideo) {
  auto conv = temp_path("latte_sparse.safetensors");
  auto r = run_cli("convert -q --from " + golden("latte/latte_cond.pt") + " --to " + conv + " --num-heads 4");
  ASSERT_EQ(r.status, 0) << r.output;
  std::string ext = "mp4";
  for (auto [e, f] : {std::pair{"mp4", VideoFormat::Mp4}, std::pair{"webp", VideoFormat::WebP}, std::pair{"gif", VideoFormat::Gif}})
    if (video_format_available(f)) {
      ext = e;
      break;
    }
  const auto video = temp_path("latte_sparse." + ext);
  const auto frames_dir = temp_path("latte_frames");
  r = run_cli("sample --ckpt " + conv + " --class-labels 3,7 --steps 6 --density range:0.3,0.9 --vae " +
              golden("vae") + " -o " + video + " --frames-dir " + frames_dir + " --nrow 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("SparseDiT-Latte"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("labels:     3,7"), std::string::npos) << r.output;
  const Video v = read_video(video);
  EXPECT_EQ(v.frames.size(0), 3);             // the model's frames
  EXPECT_EQ(v.frames.size(1), 64 + 2 * 2);    // two 64-pixel samples side by side with torchvision's padding
  EXPECT_EQ(v.frames.size(2), 2 * (64 + 2) + 2);
  for (int64_t f = 0; f < 3; ++f) {
    const auto png = read_image(frames_dir + "/s001_f00" + std::to_string(f) + ".png");
    ASSERT_EQ(png.size(0), 64);
    const auto tile = v.frames[f].narrow(0, 2, 64).narrow(1, 2 + 66, 64);
    const double mse = (tile.to(torch::kDouble) - png.to(torch::kDouble)).pow(2).mean().item<double>();
    const auto other = v.frames[f].narrow(0, 2, 64).narrow(1, 2, 64);  // sample 0's tile
    const double mse_other = (other.to(torch::kDouble) - png.to(torch::kDouble)).pow(2).mean().item<double>();
    EXPECT_GT(10.0 * std::log10(255.0 * 255.0 / std::max(mse, 1e-9)), 20.0) << "frame " << f;
    EXPECT_LT(mse, mse_other) << "frame " << f;
  }
  // Joint spatio-temporal pooling runs too.
  r = run_cli("sample -q --ckpt " + conv + " --class-labels 3 --steps 4 --density fixed:2 --temporal-pool 3 --vae none "
              "--save-latents " + temp_path("joint.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
}

// ---- FLOPs (docs/latte.md §5, §6.3) ------------------------------------------------------------

namespace {

FlopsReport latte_xl_flops(std::optional<SparseLayout> layout, const Grid& sparse) {
  auto spec = preset_spec("Latte-XL/2");
  spec.layout = std::move(layout);
  const Grid dense{16, 16, 16};
  return family("Latte").flops(spec, dense, sparse.empty() ? dense : sparse);
}

}  // namespace

TEST(LatteFlops, DenseXL2At16FramesOf256IsTheSpecsFigure) {
  const auto rep = latte_xl_flops(std::nullopt, {});
  EXPECT_NEAR(rep.gmacs(), 1893.0, 0.5);
  double blocks = 0;
  for (const auto& s : rep.segments)
    if (s.blocks > 0) blocks += s.macs;
  EXPECT_NEAR(blocks / 1e9, 1892.7, 0.1);  // 14 pairs of 67.77 + 67.42 G
}

TEST(LatteFlops, SparseDiTLatteMatchesTheSpecsTableAndJointPoolingReachesTheClaim) {
  const auto layout = SparseLayout::parse("2:4x1,3,1,1:2");
  const double dense = latte_xl_flops(std::nullopt, {}).gmacs();
  for (auto [side, want] : std::vector<std::pair<int64_t, double>>{{10, 1246.0}, {8, 1093.0}, {6, 974.0}, {5, 928.0}, {4, 890.0}}) {
    SCOPED_TRACE(side);
    EXPECT_NEAR(latte_xl_flops(layout, Grid{16, side, side}).gmacs(), want, 1.0);
  }
  // Per-frame pooling cannot reach -56 % (its ceiling); pooling the frames 16 -> 4 as well can.
  EXPECT_LT(1.0 - latte_xl_flops(layout, Grid{16, 1, 1}).gmacs() / dense, 0.566);
  const double joint = 1.0 - latte_xl_flops(layout, Grid{4, 4, 4}).gmacs() / dense;
  EXPECT_GT(joint, 0.54);
  EXPECT_LT(joint, 0.57);
}

TEST(LatteFlops, CommandPrintsTheDenseCostAndWhichLayoutsReachTheTarget) {
  auto r = run_cli("flops --model Latte-XL/2 --frames 16 --image-size 256");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("16x16x16 = 4096 tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1892.9"), std::string::npos) << r.output;
  r = run_cli("flops --model Latte-XL/2 --frames 16 --image-size 256 --sparse --density fixed:4 --layout 2:4x1,3,1,1:2 "
              "--layout 2:3x1,5,1,1:2 --temporal-pool 1,4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("| 2:4x1,3,1,1:2 | 1 | 16x4x4 |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| no |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| yes |"), std::string::npos) << r.output;
  r = run_cli("flops --model Latte-XL/2 --image-size 256 --sparse --layout 1:4x1,3,1,1:3");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("temporal block"), std::string::npos) << r.output;
}

// ---- video datasets and fine-tuning ------------------------------------------------------------

namespace {

torch::Tensor clip_frames(int64_t F, int64_t seed) {
  torch::manual_seed(seed);
  auto base = torch::rand({1, 3, 8, 8}) * 255;
  std::vector<torch::Tensor> frames;
  for (int64_t f = 0; f < F; ++f)
    frames.push_back(torch::nn::functional::interpolate(
                         base.roll({f}, {3}), torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{64, 64})
                                                   .mode(torch::kBilinear).align_corners(false))[0]
                         .permute({1, 2, 0}));
  return torch::stack(frames).round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

// ROOT/<class>/<clip>: a folder of PNG frames, and a video file of every format this build writes.
std::string make_video_folder(int64_t F) {
  const std::string root = temp_path("videos");
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root + "/a/clip0");
  std::filesystem::create_directories(root + "/b");
  const auto frames = clip_frames(F, 1);
  for (int64_t f = 0; f < F; ++f) write_png(root + "/a/clip0/" + std::to_string(100 + f) + ".png", frames[f]);
  int64_t seed = 2;
  for (auto [ext, fmt] : {std::pair{"gif", VideoFormat::Gif}, std::pair{"mp4", VideoFormat::Mp4}, std::pair{"webp", VideoFormat::WebP}})
    if (video_format_available(fmt)) write_video(root + "/b/clip." + ext, clip_frames(F, seed++));
  return root;
}

}  // namespace

TEST(LatteTrain, EncodesVideoClipsAndFineTunesOnTheirLatents) {
  const std::string root = make_video_folder(4);
  const std::string data = temp_path("video_latents");
  auto r = run_cli("encode -q --vae " + golden("vae") + " --videos " + root + " --frames 4 --image-size 64 -o " + data +
                   " --overwrite");
  ASSERT_EQ(r.status, 0) << r.output;
  auto meta = nlohmann::json::parse(read_text_file(data + "/meta.json"));
  EXPECT_EQ(meta.at("latent_shape"), nlohmann::json({4, 4, 8, 8}));
  EXPECT_GE(meta.at("num_samples").get<int64_t>(), 2);
  // A clip shorter than asked for is a clear error.
  r = run_cli("encode -q --vae " + golden("vae") + " --videos " + root + " --frames 5 --image-size 64 -o " +
              temp_path("too_long") + " --overwrite");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("has 4 frames"), std::string::npos) << r.output;

  // Fine-tune the unconditional golden Latte (4 frames of 8x8 latents) on them, then sample.
  const std::string run = temp_path("latte_run");
  std::filesystem::remove_all(run);
  r = run_cli("train -q --data " + data + " --init-from " + golden("latte/latte_uncond.pt") +
              " --num-heads 4 --steps 2 --global-batch-size 2 --ckpt-every 0 --log-every 1 --results-dir " + run);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto ckpt = run + "/checkpoints/0000002.safetensors";
  auto m = Model::load(ckpt);
  EXPECT_EQ(m.name(), "Latte");
  auto lat = temp_path("tuned.safetensors");
  r = run_cli("sample -q --ckpt " + ckpt + " --num-samples 2 --steps 3 --vae none --save-latents " + lat);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_safetensors(lat).at("latents").sizes(), (std::vector<int64_t>{2, 4, 4, 8, 8}));

  // A SparseDiT-Latte from scratch on the same data, pooling frames 4 -> 2 and each frame to 2x2.
  const std::string sparse_run = temp_path("latte_sparse_run");
  std::filesystem::remove_all(sparse_run);
  r = run_cli("train -q --data " + data + " --model Latte-S/2 --hidden-size 32 --depth 4 --num-heads 2 --sparse "
              "--density fixed:2/t2 --steps 1 --global-batch-size 4 --ckpt-every 0 --results-dir " + sparse_run);
  ASSERT_EQ(r.status, 0) << r.output;
  auto s = Model::load(sparse_run + "/checkpoints/0000001.safetensors");
  EXPECT_EQ(s.name(), "SparseDiT-Latte");
  EXPECT_EQ(s.latent().frames, 4);
  EXPECT_EQ(s.latent().cond, CondKind::ClassLabel);  // two classes in the data: extras 2
}

// Joint spatio-temporal pooling in the density spec: /tK pools the frames F -> ceil(F/K) at every stage.
TEST(SparseDiTLatte, DensityTemporalPoolSuffixPoolsTheFrames) {
  const Grid dense{16, 16, 16};
  const auto s = DensitySchedule::parse("range:0.61,0.86/t4", dense);
  for (const auto& g : s.stage_grids()) EXPECT_EQ(g.frames, 4);
  EXPECT_EQ(s.grid_at(999), (Grid{4, 6, 6}));
  EXPECT_EQ(s.temporal_pool(), 4);
  EXPECT_NE(s.describe().find("frames pooled 16 -> 4"), std::string::npos) << s.describe();
  const auto f = DensitySchedule::parse("full/t3", dense);
  EXPECT_FALSE(f.is_full());  // the frames are pooled: a SparseDiT's job
  EXPECT_EQ(f.grid_at(0), (Grid{6, 16, 16}));
  EXPECT_TRUE(DensitySchedule::parse("full", dense).is_full());
  EXPECT_EQ(DensitySchedule::parse("fixed:4", dense).grid_at(10).frames, 16);  // frames kept by default
  EXPECT_EQ(with_temporal_pool("fixed:4", 2), "fixed:4/t2");
  EXPECT_EQ(with_temporal_pool("fixed:4", 1), "fixed:4");
  for (const char* bad : {"fixed:4/t0", "fixed:4/t17", "fixed:4/tx", "fixed:4/t"})
    EXPECT_THROW(DensitySchedule::parse(bad, dense), Error) << bad;
}

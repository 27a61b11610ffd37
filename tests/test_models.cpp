// The dense DiT and the SparseDiT against the reference implementations' outputs (golden/).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/convert.h"
#include "models/dit.h"
#include "models/guidance.h"
#include "models/layers.h"
#include "models/load.h"
#include "models/model.h"
#include "model_testing.h"
#include "testing.h"
#include "util/error.h"

using namespace sdit;
using namespace sdit::testing_helpers;

namespace {

constexpr double kForwardTol = 1e-5;

StateDict read(const std::string& rel) { return read_safetensors(golden(rel)); }

// The DiT reference's forward_with_cfg over our model at one sparse grid (empty: dense).
torch::Tensor cfg_forward(Model& m, const StateDict& f, const std::string& p, double scale, int64_t channels,
                          const Grid& grid = {}) {
  DenoiseFn fn = [&](const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c) {
    return m.forward(x, t, c, grid);
  };
  GuidanceOptions g;
  g.scale = scale;
  g.guided_channels = channels;
  return forward_with_cfg(fn, f.at(p + "_x"), f.at(p + "_t"), labels(f.at(p + "_y")), g);
}

int64_t depth_of(const ModelSpec& s) { return s.config.at("depth").get<int64_t>(); }
int64_t hidden_of(const ModelSpec& s) { return s.config.at("hidden_size").get<int64_t>(); }

}  // namespace

TEST(DiT, TimestepFeaturesMatchReference) {
  auto f = read("dit/forward.safetensors");
  // Under 1e-6 with libtorch 1.13; 1.4e-6 with 2.11, whose vectorised sin/cos round differently.
  EXPECT_LT(rel_l2(timestep_embedding(f.at("temb_t")), f.at("temb_freq256")), kForwardTol);
}

TEST(DiT, PosEmbedFormulaMatchesStoredTensor) {
  auto f = read("dit/forward.safetensors");
  EXPECT_LT(rel_l2(sincos_pos_embed_2d(64, 4), f.at("pos_embed")), 1e-6);
}

TEST(DiT, ForwardMatchesReferenceFromEveryFormat) {
  auto f = read("dit/forward.safetensors");
  for (auto file : {"dit/dit.safetensors", "dit/dit.pt", "dit/dit_train_checkpoint.pt"}) {
    SCOPED_TRACE(file);
    auto m = Model::load(golden(file), heads(4));
    EXPECT_FALSE(m.sparse());
    EXPECT_EQ(m.latent().height, 8);
    EXPECT_EQ(depth_of(m.spec()), 4);
    torch::NoGradGuard ng;
    auto out = m.forward(f.at("fwd_x"), f.at("fwd_t"), labels(f.at("fwd_y")));
    EXPECT_LT(rel_l2(out, f.at("fwd_out")), kForwardTol);
  }
}

TEST(DiT, ForwardWithCfgMatchesReference) {
  auto f = read("dit/forward.safetensors");
  auto m = Model::load(golden("dit/dit.safetensors"));  // heads from the file's config metadata
  torch::NoGradGuard ng;
  const double scale = f.at("cfg_scale").item<double>();
  auto out = cfg_forward(m, f, "cfg", scale, 3);
  EXPECT_LT(rel_l2(out, f.at("cfg_out")), kForwardTol);
  // All-channel guidance differs from the release's 3-channel one exactly on channel 3.
  auto all = cfg_forward(m, f, "cfg", scale, -1);
  EXPECT_TRUE(torch::equal(all.narrow(1, 0, 3), out.narrow(1, 0, 3)));
  EXPECT_FALSE(torch::allclose(all.narrow(1, 3, 1), out.narrow(1, 3, 1)));
}

TEST(DiT, LoadReportsMissingUnexpectedAndMismatchedKeys) {
  auto sd = read_safetensors(golden("dit/dit.safetensors"));
  auto m = Model::build(detect_spec(sd));
  sd.erase("blocks.0.attn.qkv.bias");
  sd.set("blocks.9.extra", torch::zeros({1}));
  sd.set("blocks.1.mlp.fc1.weight", torch::zeros({3, 3}));
  auto r = load_state_dict(m.module(), sd, /*strict=*/false);
  ASSERT_EQ(r.missing.size(), 1u);
  EXPECT_EQ(r.missing[0], "blocks.0.attn.qkv.bias");
  ASSERT_EQ(r.unexpected.size(), 1u);
  EXPECT_EQ(r.unexpected[0], "blocks.9.extra");
  ASSERT_EQ(r.mismatched.size(), 1u);
  EXPECT_NE(r.mismatched[0].find("blocks.1.mlp.fc1.weight: expected [256, 64], found [3, 3]"), std::string::npos);
  try {
    load_state_dict(m.module(), sd, /*strict=*/true);
    FAIL() << "strict load accepted a broken state dict";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.1.mlp.fc1.weight"), std::string::npos);
  }
}

TEST(DiT, ParameterNamesAreTheStateDictLayout) {
  auto sd = read_safetensors(golden("dit/dit.safetensors"));
  auto m = Model::from_state_dict(sd, heads(4));
  auto mine = m.state_dict();
  EXPECT_EQ(mine.size(), sd.size());
  for (auto& k : sd.keys()) {
    ASSERT_TRUE(mine.contains(k)) << k;
    EXPECT_TRUE(torch::equal(mine.at(k), sd.at(k))) << k;
  }
}

TEST(DiT, PresetParameterCountsMatchThePaper) {
  auto count = [](const std::string& name, int64_t input) {
    auto c = dit_preset(name);
    c.input_size = input;
    return Model::build(ModelSpec{"DiT", c.to_json(), std::nullopt}).parameter_count();
  };
  EXPECT_EQ(count("DiT-S/2", 32), 32963360);
  EXPECT_EQ(count("DiT-S/8", 32), 33148160);
  EXPECT_THROW(dit_preset("DiT-M/2"), Error);
}

TEST(SparseDiT, ConvertReproducesTheAuthorsMapping) {
  auto dense = read("sparsedit/dense_dit.safetensors");
  auto ref = read("sparsedit/converted.safetensors");
  auto det = detect_spec(dense, heads(4));
  auto layout = SparseLayout::parse("1:2x1,1,1,1:1", depth_of(det));
  auto r = convert_dense_to_sparse(dense, hidden_of(det), depth_of(det), layout);
  EXPECT_EQ(r.sparse.size(), ref.size());
  for (auto& k : ref.keys()) {
    ASSERT_TRUE(r.sparse.contains(k)) << k;
    EXPECT_TRUE(torch::equal(r.sparse.at(k), ref.at(k))) << k;
  }
  auto expected_missing = nlohmann::json::parse(ref.metadata.at("missing")).get<std::vector<std::string>>();
  auto expected_unexpected = nlohmann::json::parse(ref.metadata.at("unexpected")).get<std::vector<std::string>>();
  EXPECT_EQ(r.missing, expected_missing);
  EXPECT_EQ(r.unexpected, expected_unexpected);
}

TEST(SparseDiT, LayoutArithmeticIsChecked) {
  EXPECT_EQ(SparseLayout::default_for_depth(28).str(), "2:4x1,3,1,1:2");
  EXPECT_EQ(SparseLayout::default_for_depth(12).str(), "1:2x1,2,1,1:1");
  EXPECT_EQ(SparseLayout::default_for_depth(24).depth(), 24);
  for (int d = 5; d <= 40; ++d) EXPECT_EQ(SparseLayout::default_for_depth(d).depth(), d) << d;
  try {
    SparseLayout::parse("2:4x1,3,1,1:2", 12);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("= 28 blocks, but the model has depth 12"), std::string::npos) << e.what();
  }
  EXPECT_THROW(SparseLayout::parse("2-4x1"), Error);
}

TEST(SparseDiT, ConvertedForwardMatchesReferenceAtEverySide) {
  auto dense = read("sparsedit/dense_dit.safetensors");
  auto f = read("sparsedit/converted_forward.safetensors");
  auto det = detect_spec(dense, heads(4));
  auto r = convert_dense_to_sparse(dense, hidden_of(det), depth_of(det), SparseLayout::parse("1:2x1,1,1,1:1"));
  auto m = Model::from_state_dict(r.sparse, heads(4));
  ASSERT_TRUE(m.sparse());
  torch::NoGradGuard ng;
  for (int side : {2, 3, 4, 6, 8}) {
    auto out = m.forward(f.at("x"), f.at("t"), labels(f.at("y")), square_grid(side));
    EXPECT_LT(rel_l2(out, f.at("converted_out_s" + std::to_string(side))), kForwardTol) << "side " << side;
  }
  auto dm = Model::from_state_dict(dense, heads(4));
  EXPECT_LT(rel_l2(dm.forward(f.at("x"), f.at("t"), labels(f.at("y"))), f.at("dense_out")), kForwardTol);
}

TEST(SparseDiT, RandomModelForwardAndCfgMatchReference) {
  auto sd = read("sparsedit/sparse_dit.safetensors");
  auto f = read("sparsedit/sparse_forward.safetensors");
  auto m = Model::from_state_dict(sd);
  EXPECT_EQ(m.layout()->str(), "1:2x1,1,1,1:1");
  torch::NoGradGuard ng;
  const auto y = labels(f.at("y"));
  for (int side : {2, 3, 4, 6, 8}) {
    auto out = m.forward(f.at("x"), f.at("t"), y, square_grid(side));
    EXPECT_LT(rel_l2(out, f.at("out_s" + std::to_string(side))), kForwardTol) << "side " << side;
  }
  const int64_t side = f.at("cfg_side").item<int64_t>();
  auto out = cfg_forward(m, f, "cfg", 4.0, 3, square_grid(side));
  EXPECT_LT(rel_l2(out, f.at("cfg_out")), kForwardTol);
  EXPECT_THROW(m.forward(f.at("x"), f.at("t"), y, square_grid(9)), Error);
  // An empty grid asks for the dense grid, which must equal an explicit full-size grid.
  EXPECT_TRUE(torch::equal(m.forward(f.at("x"), f.at("t"), y), m.forward(f.at("x"), f.at("t"), y, square_grid(8))));
}

TEST(SparseDiT, SparseGradientsMatchFiniteDifferences) {
  // The hand-written cheaper forms (pooled V mean, W1 before upsampling) must keep autograd right.
  auto sd = read("sparsedit/sparse_dit.safetensors");
  auto m = Model::from_state_dict(sd);
  m.to(torch::kCPU, torch::kDouble);
  auto f = read("sparsedit/sparse_forward.safetensors");
  auto x = f.at("x").to(torch::kDouble).narrow(0, 0, 1);
  auto t = f.at("t").narrow(0, 0, 1);
  auto y = labels(f.at("y").narrow(0, 0, 1));
  auto params = m.module().named_parameters();
  for (auto name : {"poolingformer_blocks.0.attn.v.weight", "dumbbell_blocks.1.token_recover_blocks.0.merged_layer1.weight",
                    "dumbbell_blocks.0.token_merge_blocks.0.attn.kv.weight"}) {
    auto p = params[name];
    m.module().zero_grad();
    m.forward(x, t, y, square_grid(3)).pow(2).sum().backward();
    const double analytic = p.grad().view(-1)[5].item<double>();
    const double h = 1e-6;
    torch::NoGradGuard ng;
    const double orig = p.view(-1)[5].item<double>();
    p.view(-1)[5] = orig + h;
    const double up = m.forward(x, t, y, square_grid(3)).pow(2).sum().item<double>();
    p.view(-1)[5] = orig - h;
    const double down = m.forward(x, t, y, square_grid(3)).pow(2).sum().item<double>();
    p.view(-1)[5] = orig;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic, numeric, 1e-5 * std::max(1.0, std::abs(numeric))) << name;
  }
}

TEST(Guidance, ThreeChannelGuidanceOnAOneChannelModelGuidesTheChannelItHas) {
  // A pixel-space MNIST model has 1 eps + 1 variance channel; DiT's default of 3 must not overrun.
  DenoiseFn f = [](const torch::Tensor& x, const torch::Tensor&, const Conditioning& c) {
    return torch::cat({x * (1 + c.labels.view({-1, 1, 1, 1}).to(torch::kFloat)), x}, 1);
  };
  auto x = torch::randn({4, 1, 2, 2});
  auto t = torch::zeros({4}, torch::kLong);
  auto y = labels(torch::tensor({1, 2, 0, 0}, torch::kLong));
  GuidanceOptions g;
  g.scale = 4.0;
  g.eps_channels = 1;
  auto three = forward_with_cfg(f, x, t, y, g);
  g.guided_channels = -1;
  auto all = forward_with_cfg(f, x, t, y, g);
  EXPECT_TRUE(torch::equal(three, all));
}

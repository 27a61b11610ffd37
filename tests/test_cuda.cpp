// The golden references again, on a CUDA device: the same tolerances as on CPU (1e-5 for a forward
// pass, 1e-4 for a whole deterministic sampling run). Skipped where libtorch sees no GPU (CI, the
// Debian CPU build); run on a lent GPU by scripts/gpu_check.sh.
#include <gtest/gtest.h>

#include <cstdlib>

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/pipeline.h"
#include "diffusion/samplers.h"
#include "io/safetensors.h"
#include "models/convert.h"
#include "models/guidance.h"
#include "models/load.h"
#include "models/model.h"
#include "models/vae.h"
#include "testing.h"
#include "train/step.h"
#include "util/compat.h"

using namespace sdit;

namespace {

constexpr double kForwardTol = 1e-5, kRunTol = 1e-4;

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!compat::cuda_available()) GTEST_SKIP() << "no CUDA device visible to libtorch";
    compat::set_tf32(false);  // as the CLI does for --device cuda
  }
  static torch::Device dev() { return torch::Device(torch::kCUDA, 0); }
  // The golden tensors, moved to the GPU.
  static StateDict gpu(const std::string& rel) {
    auto sd = read_safetensors(golden(rel));
    StateDict out;
    for (const auto& k : sd.keys()) out.set(k, sd.at(k).to(dev()));
    return out;
  }
  static Model gpu_model(const std::string& rel, std::optional<int64_t> heads = std::nullopt) {
    LoadOptions o;
    o.num_heads = heads;
    auto m = Model::load(golden(rel), o);
    m.to(dev());
    return m;
  }
  static Conditioning labels(const torch::Tensor& y) {
    Conditioning c;
    c.labels = y;
    return c;
  }
  static Grid grid(int64_t side) { return side > 0 ? square_grid(side) : Grid{}; }
  static torch::Tensor cfg3(Model& m, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                            double scale, const Grid& g = {}) {
    DenoiseFn fn = [&](const torch::Tensor& xx, const torch::Tensor& tt, const Conditioning& c) {
      return m.forward(xx, tt, c, g);
    };
    GuidanceOptions o;
    o.scale = scale;
    return forward_with_cfg(fn, x, t, labels(y), o);
  }
  static void expect_on_gpu(const torch::Tensor& t) { EXPECT_TRUE(t.is_cuda()); }
};

TEST_F(Cuda, DiTForwardAndCfgMatchReference) {
  auto f = gpu("dit/forward.safetensors");
  auto m = gpu_model("dit/dit.safetensors");
  torch::NoGradGuard ng;
  auto out = m.forward(f.at("fwd_x"), f.at("fwd_t"), labels(f.at("fwd_y")));
  expect_on_gpu(out);
  EXPECT_LT(rel_l2(out, f.at("fwd_out")), kForwardTol);
  auto cfg = cfg3(m, f.at("cfg_x"), f.at("cfg_t"), f.at("cfg_y"), f.at("cfg_scale").item<double>());
  EXPECT_LT(rel_l2(cfg, f.at("cfg_out")), kForwardTol);
}

TEST_F(Cuda, SparseDiTForwardMatchesReferenceAtEverySide) {
  auto f = gpu("sparsedit/sparse_forward.safetensors");
  auto c = gpu("sparsedit/converted_forward.safetensors");
  auto m = gpu_model("sparsedit/sparse_dit.safetensors");
  auto dense = read_safetensors(golden("sparsedit/dense_dit.safetensors"));
  LoadOptions four;
  four.num_heads = 4;
  const auto spec = detect_spec(dense, four);
  auto conv = Model::from_state_dict(convert_dense_to_sparse(dense, spec.config.at("hidden_size"), spec.config.at("depth"),
                                                             SparseLayout::parse("1:2x1,1,1,1:1"))
                                         .sparse,
                                     four);
  conv.to(dev());
  torch::NoGradGuard ng;
  for (int side : {2, 3, 4, 6, 8}) {
    SCOPED_TRACE("side " + std::to_string(side));
    EXPECT_LT(rel_l2(m.forward(f.at("x"), f.at("t"), labels(f.at("y")), grid(side)), f.at("out_s" + std::to_string(side))),
              kForwardTol);
    EXPECT_LT(rel_l2(conv.forward(c.at("x"), c.at("t"), labels(c.at("y")), grid(side)),
                     c.at("converted_out_s" + std::to_string(side))),
              kForwardTol);
  }
}

// DDIM with eta 0 draws no noise after z, so the CPU reference run is reproducible on the GPU.
TEST_F(Cuda, DeterministicSamplingRunsMatchReference) {
  struct Case {
    const char* ckpt;
    const char* ref;
    int64_t side;
  };
  for (const auto& c : {Case{"dit/dit.safetensors", "dit/sample_ddim.safetensors", 0},
                        Case{"sparsedit/sparse_dit.safetensors", "sparsedit/sparse_sample_ddim.safetensors", 3}}) {
    SCOPED_TRACE(c.ckpt);
    auto m = gpu_model(c.ckpt);
    auto g = gpu(c.ref);
    auto y = g.at("y").to(torch::kLong);
    ModelFn guided = [&](const torch::Tensor& x, const torch::Tensor& t) { return cfg3(m, x, t, y, 4.0, grid(c.side)); };
    GaussianDiffusion d(DiffusionOptions{1000, "ddim10", true});
    SampleOptions o;
    o.sampler = "ddim";
    torch::NoGradGuard ng;
    auto samples = sample_loop(d, guided, g.at("noise"), o);
    expect_on_gpu(samples);
    EXPECT_LT(rel_l2(samples, g.at("samples")), kRunTol);
  }
}

// batch_losses is what `train --device cuda` runs per step; the SparseDiT one weights with Min-SNR-5.
TEST_F(Cuda, TrainingLossesMatchReference) {
  for (auto [ckpt, ref, gamma] : {std::tuple{"dit/dit.safetensors", "dit/train_loss.safetensors", 0.0},
                                  std::tuple{"sparsedit/sparse_dit.safetensors", "sparsedit/sparse_train_loss.safetensors", 5.0}}) {
    SCOPED_TRACE(ckpt);
    auto m = gpu_model(ckpt, 4);
    m.train(false);  // label dropout off
    auto g = gpu(ref);
    const int64_t side = g.contains("side") ? g.at("side").item<int64_t>() : 0;
    GaussianDiffusion d(DiffusionOptions{});
    auto L = batch_losses(m, d, g.at("x_start"), g.at("t"), labels(g.at("y")), g.at("noise"), grid(side), gamma);
    expect_on_gpu(L.loss);
    EXPECT_LT(rel_l2(L.loss, g.at("loss")), kForwardTol);
    EXPECT_LT(rel_l2(L.mse, g.at("mse")), kForwardTol);
    EXPECT_LT(rel_l2(L.vb, g.at("vb")), kForwardTol);
  }
}

TEST_F(Cuda, VaeDecodeMatchesReference) {
  auto vae = load_vae(golden("vae"));
  vae->to(dev());
  auto g = gpu("vae/decode.safetensors");
  torch::NoGradGuard ng;
  EXPECT_LT(rel_l2(vae->decode_latents(g.at("z")), g.at("image")), 1e-4);  // test_vae.cpp's tolerance
}

// Backward on the GPU agrees with the CPU (the sparse blocks' hand-written pooled forms included).
TEST_F(Cuda, SparseGradientsMatchCpu) {
  auto f = read_safetensors(golden("sparsedit/sparse_forward.safetensors"));
  auto grads = [&](torch::Device d) {
    auto m = Model::load(golden("sparsedit/sparse_dit.safetensors"));
    m.to(d);
    m.forward(f.at("x").to(d), f.at("t").to(d), labels(f.at("y").to(d)), square_grid(3)).pow(2).sum().backward();
    std::vector<torch::Tensor> g;
    for (const auto& p : m.module().parameters())  // a side-3 forward leaves some tensors unused
      if (p.grad().defined()) g.push_back(p.grad().to(torch::kCPU).flatten());
    return torch::cat(g);
  };
  EXPECT_LT(rel_l2(grads(dev()), grads(torch::kCPU)), 1e-5);
}

// sample.py on a GPU draws z with torch.manual_seed(seed) then randn(..., device="cuda");
// SPARSEDIT_CUDA_NOISE names a file PyTorch wrote that way (scripts/gpu_check.sh makes it).
TEST_F(Cuda, SeededNoiseIsPyTorchsCudaStream) {
  const char* file = std::getenv("SPARSEDIT_CUDA_NOISE");
  if (!file || !*file) GTEST_SKIP() << "SPARSEDIT_CUDA_NOISE not set";
  auto ref = read_safetensors(file);
  torch::manual_seed(ref.at("seed").item<int64_t>());
  auto z = torch::randn(ref.at("z").sizes(), torch::TensorOptions().device(dev()));
  auto step = torch::randn_like(torch::cat({z, z}, 0));
  EXPECT_TRUE(torch::equal(z.cpu(), ref.at("z")));
  EXPECT_TRUE(torch::equal(step.cpu(), ref.at("step0")));
}

// The pipeline (what `sample --device cuda` runs) is deterministic for a seed and draws on the GPU.
TEST_F(Cuda, PipelineSamplesOnTheGpu) {
  auto m = gpu_model("sparsedit/sparse_dit.safetensors");
  SamplingRequest req;
  req.cond.labels = torch::tensor({1, 0, 9}, torch::kLong);
  req.steps = "10";
  req.density = "range:0.61,0.86";
  req.seed = 8;
  req.device = dev();
  auto a = run_sampling(m, req), b = run_sampling(m, req);
  EXPECT_TRUE(torch::equal(a.samples, b.samples));
  EXPECT_TRUE(torch::isfinite(a.samples).all().item<bool>());
  EXPECT_GT(a.grid_calls.size(), 1u);  // the schedule changed the grid side on the way
}

}  // namespace

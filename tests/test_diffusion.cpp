// Gaussian diffusion: respacing, schedule tables, losses and samplers, first against values
// derived independently (closed forms, Python's arithmetic), then against the reference golden
// runs of DiT's diffusion code with the small random DiT.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <iostream>

#include "diffusion/gaussian_diffusion.h"
#include "diffusion/respace.h"
#include "diffusion/samplers.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/dit.h"
#include "models/guidance.h"
#include "models/load.h"
#include "testing.h"
#include "util/error.h"

namespace sdit {
namespace {

std::vector<int64_t> range_steps(int64_t start, int64_t stop, int64_t step) {
  std::vector<int64_t> v;
  for (int64_t i = start; i < stop; i += step) v.push_back(i);
  return v;
}

void expect_rel(double got, double want, double tol) {
  EXPECT_LE(std::abs(got - want), tol * std::abs(want)) << "got " << got << " want " << want;
}

// ---------------------------------------------------------------- respacing

TEST(Respace, Default250MatchesReferenceList) {
  // docs/method.md §2 (respacing): groups of 4 with a stride-5 hop at 164->169, 497->502 and 830->835.
  std::vector<int64_t> want;
  for (int64_t i = 0; i <= 164; i += 4) want.push_back(i);
  for (int64_t i = 169; i <= 497; i += 4) want.push_back(i);
  for (int64_t i = 502; i <= 830; i += 4) want.push_back(i);
  for (int64_t i = 835; i <= 999; i += 4) want.push_back(i);
  ASSERT_EQ(want.size(), 250u);
  EXPECT_EQ(space_timesteps(1000, "250"), want);
}

TEST(Respace, HalfToEvenRounding) {
  // Accumulated strides land on 166.5, 499.5 and 832.5: Python rounds them to even.
  const std::vector<int64_t> want = {0,   42,  83,  125, 166, 208, 250, 291, 333, 375, 416, 458, 500,
                                     541, 583, 624, 666, 708, 749, 791, 832, 874, 916, 957, 999};
  EXPECT_EQ(space_timesteps(1000, "25"), want);
  EXPECT_EQ(space_timesteps(1000, "10"), (std::vector<int64_t>{0, 111, 222, 333, 444, 555, 666, 777, 888, 999}));
}

TEST(Respace, DdimIntegerStride) {
  EXPECT_EQ(space_timesteps(1000, "ddim10"), range_steps(0, 1000, 100));
  EXPECT_EQ(space_timesteps(1000, "ddim50"), range_steps(0, 1000, 20));
  EXPECT_EQ(space_timesteps(1000, "ddim250"), range_steps(0, 1000, 4));
  EXPECT_EQ(space_timesteps(1000, "ddim1000"), range_steps(0, 1000, 1));
}

TEST(Respace, SectionsAndAll) {
  // Python: sections of 334, 333, 333 steps with 10, 15 and 20 kept.
  const std::vector<int64_t> want = {0,   37,  74,  111, 148, 185, 222, 259, 296, 333, 334, 358, 381, 405, 429,
                                     453, 476, 500, 524, 547, 571, 595, 619, 642, 666, 667, 684, 702, 719, 737,
                                     754, 772, 789, 807, 824, 842, 859, 877, 894, 912, 929, 947, 964, 982, 999};
  EXPECT_EQ(space_timesteps(1000, "10,15,20"), want);
  EXPECT_EQ(space_timesteps(1000, ""), range_steps(0, 1000, 1));
  EXPECT_EQ(space_timesteps(1000, "1000"), range_steps(0, 1000, 1));
}

TEST(Respace, InvalidSpecsThrow) {
  for (const char* bad : {"abc", "ddim", "ddim0", "ddim1", "ddimx", "10,,20", "1001", "-5", "0", "12a", "ddim7x", ","})
    EXPECT_THROW(space_timesteps(1000, bad), Error) << bad;
  EXPECT_THROW(GaussianDiffusion(DiffusionOptions{1000, "1", true}), Error);  // one step cannot sample
  EXPECT_THROW(GaussianDiffusion(DiffusionOptions{0, "", true}), Error);
}

// ---------------------------------------------------------------- tables

TEST(Schedule, LinearBetasLikeNumpy) {
  const auto b = linear_betas(1000);
  ASSERT_EQ(b.size(), 1000u);
  EXPECT_EQ(b.front(), 1e-4);
  EXPECT_EQ(b.back(), 0.02);  // numpy pins the endpoint exactly
  const double step = (0.02 - 1e-4) / 999.0;
  EXPECT_EQ(b[500], 500.0 * step + 1e-4);
  const auto b250 = linear_betas(250);  // scaled by 1000 / T
  EXPECT_DOUBLE_EQ(b250.front(), 4e-4);
  EXPECT_EQ(b250.back(), 0.08);
}

TEST(Schedule, Respaced250MatchesReferenceVectors) {
  GaussianDiffusion d(DiffusionOptions{1000, "250", true});
  ASSERT_EQ(d.num_timesteps(), 250);
  EXPECT_EQ(d.timestep_map().front(), 0);
  EXPECT_EQ(d.timestep_map()[1], 4);
  EXPECT_EQ(d.timestep_map().back(), 999);
  const auto& s = d.tables();
  const double tol = 1e-12;
  expect_rel(s.betas[0], 9.999999999998899e-05, tol);
  expect_rel(s.alphas_cumprod[0], 0.9999, tol);
  expect_rel(s.posterior_log_variance_clipped[0], -9.364628159803084, tol);
  expect_rel(s.log_betas[0], -9.210340371976294, tol);
  expect_rel(s.posterior_mean_coef1[0], 1.0, tol);
  EXPECT_EQ(s.posterior_mean_coef2[0], 0.0);
  expect_rel(s.betas[1], 5.990655644756426e-04, tol);
  expect_rel(s.alphas_cumprod[1], 0.9993009943420809, tol);
  expect_rel(s.posterior_mean_coef1[1], 0.8569824917180376, tol);
  expect_rel(s.posterior_mean_coef2[1], 0.1430175007910898, tol);
  expect_rel(s.betas[249], 0.07751934499235003, tol);
  expect_rel(s.alphas_cumprod[249], 4.035829765375675e-05, tol);
  expect_rel(s.posterior_log_variance_clipped[249], -2.557231152560974, tol);
  expect_rel(s.log_betas[249], -2.5572277609664122, tol);
  // The respaced process keeps the original ᾱ at the kept timesteps.
  for (size_t i = 0; i < 250; ++i)
    expect_rel(s.alphas_cumprod[i], d.original_tables().alphas_cumprod[d.timestep_map()[i]], 1e-12);
}

TEST(Schedule, ExtractRoundsDoubleToFloat) {
  GaussianDiffusion d(DiffusionOptions{1000, "", true});
  auto t = torch::tensor({0, 7, 999}, torch::kLong);
  auto c = d.extract(d.tables().sqrt_recipm1_alphas_cumprod, t, {3, 2, 2});
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(c.scalar_type(), torch::kFloat);
  EXPECT_EQ(c[1][1][0].item<float>(), static_cast<float>(d.tables().sqrt_recipm1_alphas_cumprod[7]));
  EXPECT_THROW(d.extract(d.tables().betas, torch::tensor({1000}, torch::kLong), {1}), Error);
  EXPECT_THROW(d.map_timesteps(torch::tensor({-1}, torch::kLong)), Error);
}

TEST(Schedule, QSampleUsesFloat32Coefficients) {
  GaussianDiffusion d(DiffusionOptions{1000, "10", true});
  torch::manual_seed(3);
  auto x0 = torch::randn({2, 4, 3, 3});
  auto noise = torch::randn({2, 4, 3, 3});
  auto t = torch::tensor({0, 9}, torch::kLong);
  auto xt = d.q_sample(x0, t, noise);
  for (int64_t b = 0; b < 2; ++b) {
    const size_t i = static_cast<size_t>(t[b].item<int64_t>());
    auto want = static_cast<float>(d.tables().sqrt_alphas_cumprod[i]) * x0[b] +
                static_cast<float>(d.tables().sqrt_one_minus_alphas_cumprod[i]) * noise[b];
    EXPECT_TRUE(torch::equal(xt[b], want));
  }
}

// ---------------------------------------------------------------- losses

// Per-sample KL between diagonal Gaussians, in double, as an independent check of the vb term.
double kl_bits(const torch::Tensor& m1, double lv1, const torch::Tensor& m2, const torch::Tensor& lv2) {
  auto a = m1.to(torch::kDouble), b = m2.to(torch::kDouble), l2 = lv2.to(torch::kDouble);
  auto kl = 0.5 * (-1.0 + l2 - lv1 + torch::exp(lv1 - l2) + (a - b).pow(2) * torch::exp(-l2));
  return kl.mean().item<double>() / std::log(2.0);
}

TEST(Losses, MseAndVbAgainstDoubleFormulas) {
  GaussianDiffusion d(DiffusionOptions{1000, "", true});
  torch::manual_seed(11);
  auto x0 = torch::randn({3, 4, 4, 4}) * 0.5;
  auto noise = torch::randn({3, 4, 4, 4});
  auto t = torch::tensor({5, 300, 999}, torch::kLong);
  auto fake_eps = torch::randn({3, 4, 4, 4});
  auto fake_v = torch::rand({3, 4, 4, 4}) * 2 - 1;
  torch::Tensor seen_t;
  ModelFn model = [&](const torch::Tensor& x, const torch::Tensor& tt) {
    seen_t = tt;
    return torch::cat({fake_eps, fake_v}, 1);
  };
  auto L = d.training_losses(model, x0, t, noise);
  EXPECT_TRUE(torch::equal(seen_t, t));
  ASSERT_EQ(L.loss.sizes(), (std::vector<int64_t>{3}));
  EXPECT_LT(rel_l2(L.mse, (noise - fake_eps).pow(2).mean({1, 2, 3})), 1e-6);
  EXPECT_LT(rel_l2(L.loss, L.mse + L.vb), 1e-7);
  const auto& s = d.tables();
  for (int64_t b = 0; b < 3; ++b) {
    const size_t i = static_cast<size_t>(t[b].item<int64_t>());
    auto x0d = x0[b].to(torch::kDouble), nd = noise[b].to(torch::kDouble);
    auto xt = s.sqrt_alphas_cumprod[i] * x0d + s.sqrt_one_minus_alphas_cumprod[i] * nd;
    auto true_mean = s.posterior_mean_coef1[i] * x0d + s.posterior_mean_coef2[i] * xt;
    auto pred_x0 = s.sqrt_recip_alphas_cumprod[i] * xt - s.sqrt_recipm1_alphas_cumprod[i] * fake_eps[b].to(torch::kDouble);
    auto model_mean = s.posterior_mean_coef1[i] * pred_x0 + s.posterior_mean_coef2[i] * xt;
    auto frac = (fake_v[b].to(torch::kDouble) + 1) / 2;
    auto lv = frac * s.log_betas[i] + (1 - frac) * s.posterior_log_variance_clipped[i];
    expect_rel(L.vb[b].item<double>(), kl_bits(true_mean, s.posterior_log_variance_clipped[i], model_mean, lv), 1e-4);
  }
}

TEST(Losses, DecoderNllAtTimestepZero) {
  GaussianDiffusion d(DiffusionOptions{1000, "", true});
  torch::manual_seed(12);
  auto x0 = torch::rand({2, 4, 4, 4}) * 2.2 - 1.1;  // includes the open-ended edge bins
  auto noise = torch::randn({2, 4, 4, 4});
  auto t = torch::tensor({0, 0}, torch::kLong);
  // A near-perfect eps keeps the predicted mean within about one bin of x0: there the bin
  // probabilities are O(0.1) and float32's cdf_plus − cdf_min cancellation stays below 1e-6.
  auto eps = noise + 0.5 * torch::randn({2, 4, 4, 4});
  auto out = torch::cat({eps, torch::rand({2, 4, 4, 4}) * 2 - 1}, 1);
  auto L = d.training_losses([&](const torch::Tensor&, const torch::Tensor&) { return out; }, x0, t, noise);
  // Independent double evaluation of -log P(bin) with the same tanh CDF approximation.
  auto xt = d.q_sample(x0, t, noise).to(torch::kDouble);
  const auto& s = d.tables();
  auto pred_x0 = s.sqrt_recip_alphas_cumprod[0] * xt - s.sqrt_recipm1_alphas_cumprod[0] * out.narrow(1, 0, 4).to(torch::kDouble);
  auto mean = s.posterior_mean_coef1[0] * pred_x0 + s.posterior_mean_coef2[0] * xt;
  auto frac = (out.narrow(1, 4, 4).to(torch::kDouble) + 1) / 2;
  auto lv = frac * s.log_betas[0] + (1 - frac) * s.posterior_log_variance_clipped[0];
  auto cdf = [](const torch::Tensor& z) { return 0.5 * (1 + torch::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z.pow(3)))); };
  auto xd = x0.to(torch::kDouble);
  auto inv = torch::exp(-0.5 * lv);
  auto up = cdf(inv * (xd - mean + 1.0 / 255)), lo = cdf(inv * (xd - mean - 1.0 / 255));
  auto p = torch::where(xd < -0.999, up, torch::where(xd > 0.999, 1 - lo, up - lo));
  auto nll = (-torch::log(p.clamp_min(1e-12))).mean({1, 2, 3}) / std::log(2.0);
  EXPECT_LT(rel_l2(L.vb, nll), 1e-5);
}

TEST(Losses, VbTrainsOnlyTheVariance) {
  GaussianDiffusion d(DiffusionOptions{1000, "", true});
  auto x0 = torch::randn({2, 4, 2, 2});
  auto noise = torch::randn({2, 4, 2, 2});
  auto out = torch::randn({2, 8, 2, 2}).requires_grad_(true);
  auto L = d.training_losses([&](const torch::Tensor&, const torch::Tensor&) { return out; }, x0,
                             torch::tensor({3, 500}, torch::kLong), noise);
  L.vb.sum().backward();
  EXPECT_EQ(out.grad().narrow(1, 0, 4).abs().max().item<float>(), 0.0f);
  EXPECT_GT(out.grad().narrow(1, 4, 4).abs().max().item<float>(), 0.0f);
}

TEST(Losses, MinSnrWeightsOnlyTheMse) {
  GaussianDiffusion d(DiffusionOptions{1000, "", true});
  auto x0 = torch::randn({3, 4, 2, 2});
  auto noise = torch::randn({3, 4, 2, 2});
  auto out = torch::randn({3, 8, 2, 2});
  auto t = torch::tensor({0, 100, 900}, torch::kLong);
  ModelFn model = [&](const torch::Tensor&, const torch::Tensor&) { return out; };
  auto plain = d.training_losses(model, x0, t, noise);
  auto snr5 = d.training_losses(model, x0, t, noise, 5.0);
  EXPECT_TRUE(torch::equal(plain.vb, snr5.vb));
  for (int64_t b = 0; b < 3; ++b) {
    const double ac = d.tables().alphas_cumprod[static_cast<size_t>(t[b].item<int64_t>())];
    const double snr = ac / (1 - ac);
    expect_rel(snr5.mse[b].item<double>(), plain.mse[b].item<double>() * std::min(snr, 5.0) / snr, 1e-5);
  }
  EXPECT_EQ(snr5.mse[2].item<float>(), plain.mse[2].item<float>());  // SNR(900) < 5: weight 1
  EXPECT_LT(rel_l2(snr5.loss, snr5.mse + snr5.vb), 1e-7);
  EXPECT_THROW(d.training_losses(model, x0, t, noise, -1.0), Error);
}

// ---------------------------------------------------------------- samplers (toy models)

// Exact eps-predictor for data x0 ~ N(0, s²I): eps* = √(1−ᾱ) x / (ᾱ s² + 1 − ᾱ).
ModelFn gaussian_data_model(const GaussianDiffusion& d, double s, bool learned_sigma = true) {
  return [&d, s, learned_sigma](const torch::Tensor& x, const torch::Tensor& t) {
    const double ac = d.original_tables().alphas_cumprod[static_cast<size_t>(t[0].item<int64_t>())];
    auto eps = x * (std::sqrt(1 - ac) / (ac * s * s + 1 - ac));
    return learned_sigma ? torch::cat({eps, torch::zeros_like(x)}, 1) : eps;
  };
}

// The probability-flow ODE keeps x / √(var_t) fixed for Gaussian data; the samplers end with the
// posterior-mean x0 prediction at t = 0, which scales by √ᾱ₀ s² / var₀.
torch::Tensor gaussian_ode_solution(const GaussianDiffusion& d, const torch::Tensor& xT, double s) {
  const auto& ac = d.original_tables().alphas_cumprod;
  auto var = [&](int64_t t) { return ac[static_cast<size_t>(t)] * s * s + 1 - ac[static_cast<size_t>(t)]; };
  const int64_t t0 = d.timestep_map().front(), tT = d.timestep_map().back();
  return xT.to(torch::kDouble) * (std::sqrt(var(t0) / var(tT)) * std::sqrt(ac[static_cast<size_t>(t0)]) * s * s / var(t0));
}

TEST(Samplers, UnknownSamplerThrows) {
  GaussianDiffusion d(DiffusionOptions{1000, "10", true});
  SampleOptions o;
  o.sampler = "euler";
  EXPECT_THROW(sample_loop(d, gaussian_data_model(d, 0.5), torch::randn({1, 4, 2, 2}), o), Error);
}

TEST(Samplers, DdimEtaZeroIsDeterministicAndCountsSteps) {
  GaussianDiffusion d(DiffusionOptions{1000, "ddim10", true});
  auto xT = torch::randn({2, 4, 3, 3});
  SampleOptions o;
  o.sampler = "ddim";
  int64_t calls = 0, last = 0;
  o.on_step = [&](int64_t step, int64_t total) {
    ++calls;
    last = step;
    EXPECT_EQ(total, 10);
  };
  torch::manual_seed(1);
  auto a = sample_loop(d, gaussian_data_model(d, 0.5), xT, o);
  torch::manual_seed(2);
  auto b = sample_loop(d, gaussian_data_model(d, 0.5), xT, o);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(calls, 20);
  EXPECT_EQ(last, 10);
}

// After N steps the global generator must be exactly N randn(x.shape) draws further (ddpm, ddim)
// or untouched (dpm++2m).
TEST(Samplers, RngDrawCountMatchesReference) {
  GaussianDiffusion d(DiffusionOptions{1000, "7,5", true});
  const int64_t N = d.num_timesteps();
  ASSERT_EQ(N, 12);
  const std::vector<int64_t> shape = {2, 4, 3, 3};
  auto xT = torch::randn(shape);
  for (const std::string name : {"ddpm", "ddim", "dpm++2m"}) {
    SampleOptions o;
    o.sampler = name;
    o.eta = 0.5;
    torch::manual_seed(42);
    sample_loop(d, gaussian_data_model(d, 0.5), xT, o);
    auto next = torch::randn(shape);
    torch::manual_seed(42);
    const int64_t draws = name == "dpm++2m" ? 0 : N;
    for (int64_t i = 0; i < draws; ++i) torch::randn(shape);
    EXPECT_TRUE(torch::equal(next, torch::randn(shape))) << name;
  }
}

TEST(Samplers, DdpmLastStepIsThePosteriorMean) {
  GaussianDiffusion d(DiffusionOptions{1000, "10", true});
  auto model = gaussian_data_model(d, 0.5);
  auto x = torch::randn({2, 4, 3, 3});
  auto mean = d.p_mean_variance(model, x, 0).mean;
  EXPECT_TRUE(torch::equal(ddpm_step(d, model, x, 0, false), mean));
  EXPECT_FALSE(torch::equal(ddpm_step(d, model, x, 1, false), d.p_mean_variance(model, x, 1).mean));
}

TEST(Samplers, FixedLargeVarianceWithoutLearnedSigma) {
  GaussianDiffusion d(DiffusionOptions{1000, "10", false});
  auto model = gaussian_data_model(d, 0.5, false);
  auto x = torch::randn({2, 4, 3, 3});
  const auto& s = d.tables();
  EXPECT_EQ(d.p_mean_variance(model, x, 3).variance[1][2][0][1].item<float>(), static_cast<float>(s.betas[3]));
  // Index 0 takes the posterior variance of index 1, as the reference's FIXED_LARGE does.
  EXPECT_EQ(d.p_mean_variance(model, x, 0).variance[0][0][0][0].item<float>(), static_cast<float>(s.posterior_variance[1]));
  auto L = d.training_losses(model, x, torch::tensor({0, 9}, torch::kLong), torch::randn({2, 4, 3, 3}));
  EXPECT_TRUE(torch::equal(L.loss, L.mse));
  EXPECT_EQ(L.vb.abs().sum().item<float>(), 0.0f);
  // A learned-sigma output does not fit a fixed-variance process.
  EXPECT_THROW(d.p_mean_variance(gaussian_data_model(d, 0.5, true), x, 3), Error);
}

TEST(Samplers, DpmSolverConvergesOnGaussianData) {
  const double s = 0.5;
  torch::manual_seed(5);
  auto xT = torch::randn({4, 4, 4, 4});
  auto err = [&](const std::string& sampler, const std::string& spacing) {
    GaussianDiffusion d(DiffusionOptions{1000, spacing, true});
    SampleOptions o;
    o.sampler = sampler;
    return rel_l2(sample_loop(d, gaussian_data_model(d, s), xT, o), gaussian_ode_solution(d, xT, s));
  };
  const double ddim10 = err("ddim", "10"), ddim20 = err("ddim", "20"), dpm10 = err("dpm++2m", "10"),
               dpm20 = err("dpm++2m", "20"), dpm50 = err("dpm++2m", "50");
  std::cout << "[gaussian data] rel L2 to the exact ODE solution: ddim 10/20 " << ddim10 << " / " << ddim20
            << ", dpm++2m 10/20/50 " << dpm10 << " / " << dpm20 << " / " << dpm50 << "\n";
  EXPECT_LT(dpm10, ddim10);
  EXPECT_LT(dpm20, ddim20);
  // Second order: halving the steps divides the error by ~4, 2.5x fewer by ~6; a first-order
  // slip (÷2, ÷2.5) fails these.
  EXPECT_LT(dpm20, dpm10 / 3);
  EXPECT_LT(dpm50, dpm20 / 4);
}


// ---------------------------------------------------------------- golden (DiT's diffusion code)

class GoldenDiT : public ::testing::Test {
 protected:
  static DiT& model() {
    static DiT m = [] {
      DiTConfig cfg;
      cfg.input_size = 8;
      cfg.patch_size = 2;
      cfg.in_channels = 4;
      cfg.hidden_size = 64;
      cfg.depth = 4;
      cfg.num_heads = 4;
      cfg.num_classes = 10;
      cfg.learn_sigma = true;
      DiT net(cfg);
      load_state_dict(*net, load_checkpoint(golden("dit/dit.pt")));
      net->eval();
      return net;
    }();
    return m;
  }
  static DenoiseFn backbone() {
    return [](const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c) {
      return model()->forward(x, t, c.labels);
    };
  }
  // sample.py: manual_seed(0); z = randn(3, 4, 8, 8); z = cat(z, z); y = labels + null class.
  static std::pair<torch::Tensor, torch::Tensor> seeded_inputs() {
    model();  // building the module draws its initial weights from the global generator
    torch::manual_seed(0);
    auto z = torch::randn({3, 4, 8, 8});
    return {torch::cat({z, z}, 0), torch::tensor({1, 7, 3, 10, 10, 10}, torch::kLong)};
  }
  static ModelFn guided(const torch::Tensor& y) {
    Conditioning c;
    c.labels = y;
    return [c](const torch::Tensor& x, const torch::Tensor& t) { return forward_with_cfg(backbone(), x, t, c, GuidanceOptions{}); };
  }
  static void check_sampling_run(const std::string& file, const std::string& respacing, const std::string& sampler) {
    auto g = read_safetensors(golden(file));
    auto [z, y] = seeded_inputs();
    ASSERT_TRUE(torch::equal(z, g.at("noise"))) << "libtorch's generator does not reproduce the reference noise";
    ASSERT_TRUE(torch::equal(y, g.at("y").to(torch::kLong)));
    GaussianDiffusion d(DiffusionOptions{1000, respacing, true});
    SampleOptions o;
    o.sampler = sampler;
    auto samples = sample_loop(d, guided(y), z, o);
    const double e_all = rel_l2(samples, g.at("samples")), e_cond = rel_l2(samples.narrow(0, 0, 3), g.at("cond_samples"));
    std::cout << "[" << file << "] rel L2 samples " << e_all << ", cond_samples " << e_cond << "\n";
    EXPECT_LE(e_all, 1e-4);
    EXPECT_LE(e_cond, 1e-4);
  }
};

TEST_F(GoldenDiT, SampleDdpmMatchesReference) { check_sampling_run("dit/sample_ddpm.safetensors", "10", "ddpm"); }

TEST_F(GoldenDiT, SampleDdimMatchesReference) { check_sampling_run("dit/sample_ddim.safetensors", "ddim10", "ddim"); }

TEST_F(GoldenDiT, TrainingLossesMatchReference) {
  auto g = read_safetensors(golden("dit/train_loss.safetensors"));
  auto y = g.at("y").to(torch::kLong);
  GaussianDiffusion d(DiffusionOptions{1000, "", true});
  ModelFn m = [&](const torch::Tensor& x, const torch::Tensor& t) { return model()->forward(x, t, y); };
  torch::NoGradGuard no_grad;
  auto L = d.training_losses(m, g.at("x_start"), g.at("t").to(torch::kLong), g.at("noise"));
  const double el = rel_l2(L.loss, g.at("loss")), em = rel_l2(L.mse, g.at("mse")), ev = rel_l2(L.vb, g.at("vb"));
  std::cout << "[train_loss] rel L2 loss " << el << ", mse " << em << ", vb " << ev << "\n";
  EXPECT_LE(el, 1e-5);
  EXPECT_LE(em, 1e-5);
  EXPECT_LE(ev, 1e-5);
}

// DPM-Solver++(2M) against a fine DDIM eta-0 solution of the same probability-flow ODE. The
// reference is DDIM on "250" (original timesteps 999 ... 0), not "ddim250": the latter starts at
// t = 996, and that start alone puts it 0.03 (rel L2) away from a 1000-step DDIM solution, more than
// the DPM++ discretisation error being measured. "250" is 0.0017 from the 1000-step solution.
TEST_F(GoldenDiT, DpmSolverBeatsDdimAgainstFineOdeSolution) {
  auto [z, y] = seeded_inputs();
  auto run = [&, z = z, y = y](const std::string& sampler, const std::string& spacing) {
    GaussianDiffusion d(DiffusionOptions{1000, spacing, true});
    SampleOptions o;
    o.sampler = sampler;
    return sample_loop(d, guided(y), z, o);
  };
  auto ref = run("ddim", "250");
  const double ddim20 = rel_l2(run("ddim", "20"), ref), dpm20 = rel_l2(run("dpm++2m", "20"), ref),
               dpm50 = rel_l2(run("dpm++2m", "50"), ref);
  std::cout << "[golden DiT, cfg 4] rel L2 to DDIM-250: ddim20 " << ddim20 << ", dpm++2m 20 " << dpm20
            << ", dpm++2m 50 " << dpm50 << "\n";
  EXPECT_LT(dpm20, ddim20);
  EXPECT_LT(dpm50, dpm20);
}

}  // namespace
}  // namespace sdit

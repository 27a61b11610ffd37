#pragma once
// Helpers of the PixArt golden tests (test_pixart.cpp, test_pixart_layouts.cpp): the golden files of
// ../shared/golden/pixart (base/, ms/), the constructor arguments a .pth cannot carry, and the
// measured-error printout.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "cli_runner.h"
#include "io/safetensors.h"
#include "models/load.h"
#include "models/model.h"
#include "testing.h"

namespace sdit::pixart_test {

constexpr double kForwardTol = 1e-5, kSampleTol = 1e-4;
inline const char* kCases[] = {"base", "ms"};

inline StateDict read(const std::string& rel) { return read_safetensors(golden("pixart/" + rel)); }

inline nlohmann::json case_json(const std::string& c) {
  std::ifstream f(golden("pixart/" + c + "/case.json"));
  return nlohmann::json::parse(f);
}

// What a .pth cannot say: the head count and lewei_scale, from the constructor the golden used.
inline LoadOptions load_options(const std::string& c) {
  const auto ctor = case_json(c).at("original_constructor");
  LoadOptions o;
  o.num_heads = ctor.at("num_heads").get<int64_t>();
  o.config["lewei_scale"] = ctor.at("lewei_scale").get<double>();
  return o;
}

// rel_l2 within tol; the measured value is printed (the README's "what is exact" comes from these lines).
inline void expect_rel(const torch::Tensor& a, const torch::Tensor& ref, double tol, const char* what) {
  const double e = rel_l2(a, ref);
  std::printf("  [measured] %-60s rel L2 %.2e\n", what, e);
  EXPECT_LT(e, tol) << what;
}
#define EXPECT_REL(a, ref, tol) expect_rel(a, ref, tol, #ref)

inline Model load_pth(const std::string& c) { return Model::load(golden("pixart/" + c + "/pixart.pth"), load_options(c)); }
inline Model load_diffusers(const std::string& c) { return Model::load(golden("pixart/" + c + "/transformer")); }

inline Conditioning captions(const StateDict& f, const std::string& p, bool with_mask = true) {
  Conditioning c;
  c.context = f.at(p + "_y");
  if (with_mask) c.context_mask = f.at(p + "_mask");
  if (f.contains(p + "_hw")) c.img_hw = f.at(p + "_hw"), c.aspect_ratio = f.at(p + "_ar");
  return c;
}

// `sparsedit sample` with `model_flags` (--ckpt ...) and --caption-embeddings `caption_file`
// reproduces sample_dpms' samples and sample_iddpm's conditional samples of case c within 1e-4.
inline void expect_sample_command_reproduces(const std::string& c, const std::string& model_flags,
                                             const std::string& caption_file) {
  const bool ms = c == "ms";
  const auto cj = case_json(c);
  const std::string common = model_flags + " --caption-embeddings " + caption_file + " -s " +
                             std::to_string(cj.at("seeds").at("sampling torch.manual_seed").get<int64_t>()) +
                             (ms ? " -H 64 -W 128" : "") + " -q";
  auto dpms = read(c + "/sample_dpms.safetensors");
  const std::string out = temp_path(c + "_dpms.safetensors");
  auto r = run_cli("sample " + common + " --steps " + std::to_string(dpms.at("model_t").size(0)) + " --save-latents " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_REL(read_safetensors(out).at("latents"), dpms.at("samples"), kSampleTol);

  // IDDPM through forward_with_cfg; PixArtMS's drops the caption mask (the quirk, behind its flag).
  auto iddpm = read(c + "/sample_iddpm.safetensors");
  const std::string out2 = temp_path(c + "_iddpm.safetensors");
  r = run_cli("sample " + common + " --sampler iddpm --steps " + std::to_string(iddpm.at("timestep_map").size(0)) +
              (ms ? " --cfg-drop-mask" : "") + " --save-latents " + out2);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_REL(read_safetensors(out2).at("latents"), iddpm.at("cond_samples"), kSampleTol);
}

}  // namespace sdit::pixart_test

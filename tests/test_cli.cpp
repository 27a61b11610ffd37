// The sample/convert/info commands end to end, against the reference sample.py runs (golden/).
#include <gtest/gtest.h>

#include <fstream>

#include "cli_runner.h"
#include "io/safetensors.h"
#include "testing.h"

using namespace sdit;

namespace {

constexpr double kSampleTol = 1e-4;

torch::Tensor sampled_latents(const std::string& args, const std::string& out) {
  auto r = run_cli("sample -q " + args + " --vae none --save-latents " + out);
  EXPECT_EQ(r.status, 0) << r.output;
  return read_safetensors(out).at("latents");
}

}  // namespace

TEST(SampleCommand, DdpmReproducesReferenceSamplePy) {
  auto out = temp_path("ddpm.safetensors");
  auto z = sampled_latents("--ckpt " + golden("dit/dit.pt") +
                               " --num-heads 4 --class-labels 1,7,3 --num-sampling-steps 10 --cfg-scale 4",
                           out);
  auto ref = read_safetensors(golden("dit/sample_ddpm.safetensors"));
  EXPECT_LT(rel_l2(z, ref.at("cond_samples")), kSampleTol);
}

TEST(SampleCommand, DdimReproducesReference) {
  auto out = temp_path("ddim.safetensors");
  auto z = sampled_latents("--ckpt " + golden("dit/dit.pt") +
                               " --num-heads 4 --class-labels 1,7,3 --sampler ddim --num-sampling-steps ddim10",
                           out);
  auto ref = read_safetensors(golden("dit/sample_ddim.safetensors"));
  EXPECT_LT(rel_l2(z, ref.at("cond_samples")), kSampleTol);
}

TEST(SampleCommand, SparseDiTAtFixedSideReproducesReference) {
  for (auto [sampler, steps, file] : {std::tuple{"ddpm", "10", "sparse_sample_ddpm"},
                                      std::tuple{"ddim", "ddim10", "sparse_sample_ddim"}}) {
    SCOPED_TRACE(file);
    auto out = temp_path(std::string(file) + ".safetensors");
    auto z = sampled_latents("--ckpt " + golden("sparsedit/sparse_dit.safetensors") + " --seed 8 --class-labels 1,0,9 " +
                                 "--density fixed:3 --sampler " + sampler + " --num-sampling-steps " + steps,
                             out);
    auto ref = read_safetensors(golden(std::string("sparsedit/") + file + ".safetensors"));
    EXPECT_LT(rel_l2(z, ref.at("cond_samples")), kSampleTol);
  }
}

TEST(SampleCommand, ConvertThenSampleWithTheScheduleRunsEndToEnd) {
  auto conv = temp_path("converted.safetensors");
  auto r = run_cli("convert --from " + golden("sparsedit/dense_dit.pt") + " --to " + conv + " --layout 1:2x1,1,1,1:1 --num-heads 4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("merged_layer2.weight"), std::string::npos);
  auto ref = read_safetensors(golden("sparsedit/converted.safetensors"));
  auto mine = read_safetensors(conv);
  ASSERT_EQ(mine.size(), ref.size());
  for (auto& k : ref.keys()) EXPECT_TRUE(torch::equal(mine.at(k), ref.at(k))) << k;
  r = run_cli("sample --ckpt " + conv + " --class-labels 1,2 --num-sampling-steps 8 --density range:0.61,0.86 "
              "--vae none --save-latents " + temp_path("sched.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("grid sides:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GMACs:"), std::string::npos) << r.output;
}

TEST(SampleCommand, BadInputGetsAClearErrorAndNonZeroExit) {
  const std::string ck = "--ckpt " + golden("dit/dit.pt") + " --num-heads 4 --vae none ";
  struct Case { std::string args, message; };
  for (const auto& c : std::vector<Case>{
           {ck + "--class-labels 1,10", "class label 10 is out of range"},
           {ck + "--class-labels 1,x", "invalid class label"},
           {ck + "--class-labels 1 --num-sampling-steps 10x", "10x"},
           {ck + "--image-size 128", "does not match the checkpoint"},
           {ck + "--num-classes 1000", "does not match the checkpoint's 10 classes"},
           {ck + "--class-labels 1 --sampler euler", "euler"},
           {ck + "--class-labels 1 --density fixed:2", "needs a SparseDiT"},
           {"--ckpt /nonexistent/file.pt", "/nonexistent/file.pt"},
           {ck + "--no-such-flag", "no-such-flag"}}) {
    SCOPED_TRACE(c.args);
    auto r = run_cli("sample " + c.args);
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  }
}

TEST(InfoCommand, PrintsTheDetectedConfig) {
  auto r = run_cli("info --ckpt " + golden("dit/dit.pt"));
  ASSERT_EQ(r.status, 0) << r.output;
  for (auto s : {"family:      DiT", "hidden size: 64", "depth:       4", "patch size:  2", "4x8x8", "classes:     10",
                 "tensors:     52"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  r = run_cli("info --ckpt " + golden("sparsedit/sparse_dit.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("layout:      1:2x1,1,1,1:1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("heads:       4"), std::string::npos) << r.output;
}

TEST(InfoCommand, HostileFilesAreRefusedWithoutCrashing) {
  auto write = [](const std::string& name, const std::string& bytes) {
    auto p = temp_path(name);
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  };
  std::string good;
  {
    std::ifstream in(golden("dit/dit.safetensors"), std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string huge_header("\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
  for (auto path : {write("empty.safetensors", ""), write("garbage.pt", "this is not a checkpoint at all"),
                    write("trunc.safetensors", good.substr(0, good.size() / 2)),
                    write("huge.safetensors", huge_header + "{}"), write("trunc.pt", "PK\x03\x04garbage")}) {
    SCOPED_TRACE(path);
    auto r = run_cli("info --ckpt " + path);
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("error:"), std::string::npos) << r.output;
  }
}

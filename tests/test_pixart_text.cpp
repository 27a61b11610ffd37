// PixArt's text path end to end: prompts through T5 (golden tiny T5 and tokenizer) into a tiny PixArt
// whose caption width is T5's, against the two-stage run (encode-text, then --caption-embeddings); a
// whole diffusers pipeline folder from one --ckpt; captioned datasets from `encode --captions`; the
// end-to-end bench row.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "data/latent_dataset.h"
#include "data/npz.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "testing.h"
#include "util/error.h"

using namespace sdit;
namespace fs = std::filesystem;

namespace {

const std::string kT5 = "t5/t5_full_safetensors_sharded", kTok = "t5/tokenizer";

std::string t5_flags() { return " --text-encoder " + golden(kT5) + " --tokenizer " + golden(kTok); }

// A random PixArt (hidden 48, depth 2, 4 heads, 8x8 latents) taking the golden T5's 64-channel
// features at 120 tokens, written with its config metadata.
std::string tiny_pixart() {
  static std::string path;
  if (!path.empty()) return path;
  path = temp_path("tiny_pixart_t5.safetensors");
  ModelSpec spec = preset_spec("PixArt-XL/2");
  SpecOverrides o;
  o.hidden_size = 48, o.depth = 2, o.num_heads = 4, o.height = o.width = 8, o.context_dim = 64, o.context_len = 120;
  spec = family("PixArt").apply_overrides(spec, o);
  torch::manual_seed(3);
  Model m = Model::build(spec);
  m.init_weights();
  torch::NoGradGuard ng;
  for (auto& p : m.module().parameters())  // no zero-init: every path must matter
    if (!p.any().item<bool>()) p.normal_(0.0, 0.05);
  write_safetensors(path, m.state_dict());
  return path;
}

torch::Tensor latents(const std::string& file) { return read_safetensors(file).at("latents"); }

}  // namespace

TEST(PixArtText, PromptsThroughT5EqualTheTwoStageRun) {
  const std::string a = temp_path("e2e_a.safetensors"), caps = temp_path("e2e_caps.safetensors"),
                    b = temp_path("e2e_b.safetensors");
  auto r = run_cli("sample --ckpt " + tiny_pixart() + t5_flags() +
                   " -p \"A small cactus with a happy face.\" -p \"a red cube\" --steps 4 -s 2 --save-latents " + a);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("loaded T5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("freed the text encoder"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("peak RSS"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("learned y_embedding"), std::string::npos) << r.output;
  r = run_cli("encode-text -q" + t5_flags() +
              " --clean-caption full --prompt \"A small cactus with a happy face.\" --prompt \"a red cube\" --save " + caps);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_cli("sample -q --ckpt " + tiny_pixart() + " --caption-embeddings " + caps + " --steps 4 -s 2 --save-latents " + b);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(torch::equal(latents(a), latents(b)));

  // A negative prompt is the diffusers convention: T5("") with its own mask, not the learned caption.
  const std::string c = temp_path("e2e_c.safetensors");
  r = run_cli("sample --ckpt " + tiny_pixart() + t5_flags() +
              " -p \"A small cactus with a happy face.\" -p \"a red cube\" -n \"\" --steps 4 -s 2 --save-latents " + c);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("negative prompt"), std::string::npos) << r.output;
  EXPECT_GT(rel_l2(latents(c), latents(a)), 1e-3);
  // --null-caption empty-prompt asks for the same T5("") branch.
  const std::string d = temp_path("e2e_d.safetensors");
  r = run_cli("sample -q --ckpt " + tiny_pixart() + t5_flags() +
              " -p \"A small cactus with a happy face.\" -p \"a red cube\" --null-caption empty-prompt --steps 4 -s 2 "
              "--save-latents " + d);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(torch::equal(latents(c), latents(d)));
}

TEST(PixArtText, AWholePipelineFolderComesFromOneCkpt) {
  const std::string dir = temp_path("pipeline");
  fs::remove_all(dir);
  fs::create_directories(dir + "/transformer");
  fs::copy_file(tiny_pixart(), dir + "/transformer/diffusion_pytorch_model.safetensors");
  fs::create_directory_symlink(golden(kT5), dir + "/text_encoder");
  fs::create_directory_symlink(golden(kTok), dir + "/tokenizer");
  fs::create_directory_symlink(golden("vae"), dir + "/vae");
  std::ofstream(dir + "/model_index.json") << R"({"_class_name": "PixArtAlphaPipeline"})";
  auto info = run_cli("info --ckpt " + dir);
  ASSERT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("pipeline:"), std::string::npos) << info.output;
  const std::string a = temp_path("pipe_a.safetensors"), png = temp_path("pipe.png");
  auto r = run_cli("sample --ckpt " + dir + " -p \"a red cube\" --steps 4 -s 5 --save-latents " + a + " -o " + png);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("images with the VAE in " + dir + "/vae"), std::string::npos) << r.output;
  EXPECT_GE(read_png(png).size(0), 64);  // one 64x64 image (plus the grid's padding)
  // --save-npz streams the decoded batches (--vae-batch at a time) and, without -o, writes no grid.
  const std::string npz1 = temp_path("pipe_1.npz"), npz8 = temp_path("pipe_8.npz");
  const std::string three = " -p \"a red cube\" -p \"a blue ball\" -p \"a cat\" --steps 2 -s 5 ";
  r = run_cli("sample --ckpt " + dir + three + "--vae-batch 2 --save-npz " + npz1);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("wrote sample.png"), std::string::npos) << r.output;
  ASSERT_EQ(run_cli("sample -q --ckpt " + dir + three + "--save-npz " + npz8).status, 0);
  const auto in_pieces = NpzReader(npz1).get("arr_0"), at_once = NpzReader(npz8).get("arr_0");
  ASSERT_EQ(in_pieces.sizes(), torch::IntArrayRef({3, 64, 64, 3}));
  // Decoding 2 + 1 latents instead of 3 may move a float by an ulp, and so a pixel by one level.
  EXPECT_LE((in_pieces.to(torch::kInt) - at_once.to(torch::kInt)).abs().max().item<int>(), 1);
  EXPECT_NE(run_cli("sample -q --ckpt " + dir + three + "--vae-batch 0 --save-npz " + npz1).status, 0);
  const std::string b = temp_path("pipe_b.safetensors");
  r = run_cli("sample -q --ckpt " + tiny_pixart() + t5_flags() + " -p \"a red cube\" --steps 4 -s 5 --save-latents " + b);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(torch::equal(latents(a), latents(b)));
  // A DiT refuses prompts before any text encoder is loaded.
  r = run_cli("sample --ckpt " + golden("dit/dit.safetensors") + t5_flags() + " -p \"a cat\"");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("applies to text-to-image models"), std::string::npos) << r.output;
}

TEST(PixArtText, EncodeStoresT5FeaturesBesideTheLatentsAndTrainUsesThem) {
  const std::string images = temp_path("captioned_images");
  fs::remove_all(images);
  fs::create_directories(images + "/sub");
  torch::manual_seed(9);
  const std::vector<std::string> names = {"a.png", "b.png", "sub/c.png", "nocap.png"};
  for (size_t i = 0; i < names.size(); ++i) {
    write_png(images + "/" + names[i], torch::randint(0, 256, {64, 64, 3}).to(torch::kUInt8));
    if (names[i] != "nocap.png")
      std::ofstream(images + "/" + fs::path(names[i]).replace_extension(".txt").string()) << "caption " << i << "\n";
  }
  const std::string out = temp_path("captioned_ds");
  auto r = run_cli("encode --vae " + golden("vae") + " --images " + images + " --image-size 64 --captions txt" +
                   t5_flags() + " -o " + out + " --overwrite");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ignored 1 images without a caption file"), std::string::npos) << r.output;
  auto ds = LatentDataset::open(out);
  ASSERT_TRUE(ds.captioned());
  EXPECT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.captions.sizes(), (std::vector<int64_t>{3, 120, 64}));
  // The stored features are what encode-text computes for those captions.
  const std::string caps = temp_path("ds_caps.safetensors");
  r = run_cli("encode-text -q" + t5_flags() +
              " --clean-caption full --prompt \"caption 0\" --prompt \"caption 1\" --prompt \"caption 2\" --save " + caps);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto want = read_safetensors(caps);
  EXPECT_TRUE(torch::equal(ds.captions, want.at("last_hidden_state")));
  EXPECT_TRUE(torch::equal(ds.caption_mask, want.at("attention_mask")));

  // JSONL pairs, paths relative to the file.
  const std::string jl = images + "/pairs.jsonl";
  std::ofstream(jl) << R"({"image": "a.png", "caption": "caption 0"})" << "\n\n"
                    << R"({"image": "sub/c.png", "caption": "caption 2"})" << "\n";
  r = run_cli("encode -q --vae " + golden("vae") + " --image-size 64 --captions " + jl + t5_flags() + " -o " + out +
              "2 --overwrite");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(LatentDataset::open(out + "2").size(), 2);
  std::ofstream(jl) << R"({"image": "a.png"})" << "\n";
  r = run_cli("encode -q --vae " + golden("vae") + " --image-size 64 --captions " + jl + t5_flags() + " -o " + out + "3");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("pairs.jsonl:1"), std::string::npos) << r.output;

  // Fine-tune the tiny PixArt on the captioned latents.
  const std::string run = temp_path("train_on_captions");
  fs::remove_all(run);
  r = run_cli("train -q --data " + out + " --init-from " + tiny_pixart() + " --global-batch-size 3 --steps 2 " +
              "--results-dir " + run + " --export " + run + "/final.safetensors");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(run + "/final.safetensors"));
}

TEST(PixArtText, BenchEndToEndRowsTimeEveryStage) {
  auto r = run_cli("bench --model PixArt-XL/2 --random-weights --hidden-size 48 --depth 5 --num-heads 4 "
                   "--latent-size 8 --e2e --text-encoder t5-v1_1-small --t5-layers 1 --num-sampling-steps 3 -q --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  ASSERT_EQ(j.at("rows").size(), 2u);  // dense and the default density
  for (const auto& row : j.at("rows")) {
    std::vector<std::string> names;
    for (const auto& s : row.at("stages")) names.push_back(s.at("name"));
    EXPECT_EQ(names, (std::vector<std::string>{"T5 weights", "T5 encode", "transformer weights", "sampling",
                                                "VAE weights", "VAE decode"}));
    EXPECT_EQ(row.at("steps").get<int64_t>(), 3);
  }
  EXPECT_NE(j.at("rows")[1].at("model").get<std::string>().find("SparseDiT-PixArt"), std::string::npos);
}

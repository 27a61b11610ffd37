// The SD VAE against diffusers' golden outputs, the PNG/JPEG/grid image path, PIL-style resizing,
// and the encode -> latent dataset round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

#ifdef SPARSEDIT_HAVE_JPEG
#include <jpeglib.h>
#endif

#include "io/image.h"
#include "data/latent_dataset.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "models/load.h"
#include "models/vae.h"
#include "testing.h"
#include "train/encode_folder.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace sdit;

namespace {

constexpr double kTol = 1e-4;

const std::string& vae_dir() {
  static const std::string d = golden("vae");
  return d;
}

AutoencoderKL golden_vae() {
  static AutoencoderKL vae = load_vae(vae_dir());
  return vae;
}

// A fresh folder per test under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() / ("sdit_vae_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
};

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// The golden model folder with its state dict rewritten by `rename` (config.json copied).
std::string write_variant(const TempDir& dir, const std::string& name,
                          const std::function<std::string(const std::string&)>& rename,
                          const std::function<torch::Tensor(const std::string&, const torch::Tensor&)>& reshape,
                          bool with_config, const std::string& file = "diffusion_pytorch_model.safetensors") {
  auto sd = read_safetensors(vae_dir() + "/diffusion_pytorch_model.safetensors");
  StateDict out;
  for (const auto& k : sd.keys()) out.set(rename(k), reshape(k, sd.at(k)));
  fs::create_directories(dir.path / name);
  const std::string weights = dir / (name + "/" + file);
  write_safetensors(weights, out);
  if (with_config) write_file(dir / (name + "/config.json"), read_file(vae_dir() + "/config.json"));
  return with_config ? dir / name : weights;
}

torch::Tensor golden_decode_ref() { return read_safetensors(golden("vae/decode.safetensors")).at("image"); }

torch::Tensor decode_golden_z(AutoencoderKL vae) {
  return vae->decode_latents(read_safetensors(golden("vae/decode.safetensors")).at("z"));
}

#ifdef SPARSEDIT_HAVE_JPEG
void write_jpeg(const std::string& path, const torch::Tensor& hwc) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  jpeg_stdio_dest(&c, f);
  c.image_width = static_cast<JDIMENSION>(hwc.size(1));
  c.image_height = static_cast<JDIMENSION>(hwc.size(0));
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 95, TRUE);
  jpeg_start_compress(&c, TRUE);
  auto px = hwc.contiguous();
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = px.data_ptr<uint8_t>() + int64_t(c.next_scanline) * hwc.size(1) * 3;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}
#endif

torch::Tensor random_image(int64_t h, int64_t w, int64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  // Smooth gradients plus mild noise: JPEG keeps them close, and resizing has something to do.
  auto yy = torch::linspace(0, 1, h).view({h, 1, 1});
  auto xx = torch::linspace(0, 1, w).view({1, w, 1});
  auto base = torch::cat({yy.expand({h, w, 1}), xx.expand({h, w, 1}), (yy * xx).expand({h, w, 1})}, 2);
  auto noise = torch::rand({h, w, 3}, gen) * 0.1;
  return ((base * 0.9 + noise) * 255).clamp(0, 255).to(torch::kUInt8);
}

}  // namespace

TEST(Vae, ConfigFromJsonAndShapesAgree) {
  auto cfg = VAEConfig::from_json(read_file(vae_dir() + "/config.json"));
  EXPECT_EQ(cfg.block_out_channels, (std::vector<int64_t>{32, 64, 64, 64}));
  EXPECT_EQ(cfg.layers_per_block, 2);
  EXPECT_DOUBLE_EQ(cfg.scaling_factor, 0.18215);
  auto det = detect_vae_config(canonical_vae_state_dict(read_safetensors(vae_dir() + "/diffusion_pytorch_model.safetensors")));
  EXPECT_EQ(det.block_out_channels, cfg.block_out_channels);
  EXPECT_EQ(det.layers_per_block, cfg.layers_per_block);
  EXPECT_EQ(det.latent_channels, 4);
  EXPECT_TRUE(det.mid_block_add_attention && det.use_quant_conv && det.use_post_quant_conv);
}

TEST(Vae, StateDictLayoutIsDiffusers) {
  auto file = read_safetensors(vae_dir() + "/diffusion_pytorch_model.safetensors");
  auto mine = module_state_dict(*golden_vae());
  ASSERT_EQ(mine.keys(), file.keys());  // same names, same order
  int64_t n = 0;
  for (const auto& p : golden_vae()->parameters()) n += p.numel();
  EXPECT_EQ(n, 1732679);
}

TEST(Vae, DecodeMatchesGolden) {
  auto img = decode_golden_z(golden_vae());
  EXPECT_LT(rel_l2(img, golden_decode_ref()), kTol);
}

TEST(Vae, EncodeMatchesGolden) {
  auto g = read_safetensors(golden("vae/encode.safetensors"));
  auto post = golden_vae()->encode(g.at("x"));
  EXPECT_LT(rel_l2(post.mean, g.at("mean")), kTol);
  EXPECT_LT(rel_l2(post.logvar, g.at("logvar")), kTol);
  EXPECT_LT(rel_l2(post.std(), g.at("std")), kTol);
  EXPECT_LT(rel_l2(post.sample(g.at("noise")), g.at("sample")), kTol);
  // The stored noise is torch.randn(mean.shape, generator=Generator().manual_seed(2)).
  auto gen = at::detail::createCPUGenerator(2);
  EXPECT_TRUE(torch::equal(torch::randn({2, 4, 4, 4}, gen, torch::kFloat32), g.at("noise")));
}

TEST(Vae, IntermediatesMatchGolden) {
  auto ref = read_safetensors(golden("vae/intermediates.safetensors"));
  std::map<std::string, double> errs;
  std::string prefix;
  auto vae = load_vae(vae_dir());
  vae->set_trace([&](const std::string& name, const torch::Tensor& t) {
    if (ref.contains(prefix + name)) errs[prefix + name] = rel_l2(t, ref.at(prefix + name));
  });
  prefix = "decode.";
  decode_golden_z(vae);
  prefix = "encode.";
  vae->encode(read_safetensors(golden("vae/encode.safetensors")).at("x"));
  for (const auto& k : ref.keys()) {
    ASSERT_TRUE(errs.count(k)) << "no output traced for " << k;
    EXPECT_LT(errs[k], kTol) << k;
  }
}

TEST(Vae, LegacyAttentionNamesLoad) {
  TempDir dir;
  const std::map<std::string, std::string> legacy = {
      {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
  auto path = write_variant(
      dir, "legacy",
      [&](const std::string& k) {
        for (auto& [from, to] : legacy)
          if (auto p = k.find(from); p != std::string::npos) return k.substr(0, p) + to + k.substr(p + from.size());
        return k;
      },
      [](const std::string&, const torch::Tensor& t) { return t; }, true);
  EXPECT_LT(rel_l2(decode_golden_z(load_vae(path)), golden_decode_ref()), kTol);
}

// The inverse of diffusers' LDM conversion, written out by hand: the CompVis names, decoder
// levels counted from the top resolution, attention as 1x1 convs, inside a full SD checkpoint.
TEST(Vae, OriginalLdmLayoutLoads) {
  TempDir dir;
  auto to_ldm = [](std::string k) {
    auto rep = [&](const std::string& from, const std::string& to) {
      if (auto p = k.find(from); p != std::string::npos) k = k.substr(0, p) + to + k.substr(p + from.size());
    };
    rep("mid_block.resnets.0.", "mid.block_1.");
    rep("mid_block.resnets.1.", "mid.block_2.");
    rep("mid_block.attentions.0.group_norm.", "mid.attn_1.norm.");
    rep("mid_block.attentions.0.to_q.", "mid.attn_1.q.");
    rep("mid_block.attentions.0.to_k.", "mid.attn_1.k.");
    rep("mid_block.attentions.0.to_v.", "mid.attn_1.v.");
    rep("mid_block.attentions.0.to_out.0.", "mid.attn_1.proj_out.");
    rep("conv_norm_out.", "norm_out.");
    rep("conv_shortcut.", "nin_shortcut.");
    rep("downsamplers.0.", "downsample.");
    rep("upsamplers.0.", "upsample.");
    for (int b = 0; b < 4; ++b) {
      rep("encoder.down_blocks." + std::to_string(b) + ".resnets.", "encoder.down." + std::to_string(b) + ".block.");
      rep("encoder.down_blocks." + std::to_string(b) + ".", "encoder.down." + std::to_string(b) + ".");
      rep("decoder.up_blocks." + std::to_string(b) + ".resnets.", "decoder.up." + std::to_string(3 - b) + ".block.");
      rep("decoder.up_blocks." + std::to_string(b) + ".", "decoder.up." + std::to_string(3 - b) + ".");
    }
    return "first_stage_model." + k;
  };
  auto path = write_variant(
      dir, "ldm", to_ldm,
      [](const std::string& k, const torch::Tensor& t) {
        return k.find(".attentions.") != std::string::npos && t.dim() == 2 ? t.view({t.size(0), t.size(1), 1, 1}) : t;
      },
      false, "model.safetensors");
  auto vae = load_vae(path);
  EXPECT_EQ(vae->config().block_out_channels, (std::vector<int64_t>{32, 64, 64, 64}));
  EXPECT_LT(rel_l2(decode_golden_z(vae), golden_decode_ref()), kTol);
}

TEST(Vae, PngOfDecodeMatchesQuantizedReference) {
  TempDir dir;
  auto img = decode_golden_z(golden_vae());
  const std::string png = dir / "grid.png";
  save_image_grid(img, 4, png, {{"parameters", "seed: 0, steps: 250"}});
  auto got = read_png(png);
  // torchvision: make_grid(nrow=4, padding=2, pad 0) of the 2 images -> 1 row of 2 cells, then
  // normalize to [0, 1] from (-1, 1), x*255+0.5 clamped, truncated to uint8.
  auto ref = golden_decode_ref();
  const int64_t H = 32, W = 32, pad = 2;
  auto expect = torch::zeros({H + 2 * pad, 2 * (W + pad) + pad, 3}, torch::kInt32);
  auto acc = ref.accessor<float, 4>();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          float v = std::min(1.0f, std::max(-1.0f, acc[n][c][y][x]));
          v = (v + 1.0f) / 2.0f * 255.0f + 0.5f;
          expect[pad + y][pad + n * (W + pad) + x][c] = static_cast<int>(std::min(255.0f, std::max(0.0f, v)));
        }
  ASSERT_EQ(got.sizes(), expect.sizes());
  EXPECT_LE((got.to(torch::kInt32) - expect).abs().max().item<int>(), 1);
  EXPECT_EQ(read_png_text(png).at("parameters"), "seed: 0, steps: 250");
}

TEST(Vae, GridLayoutFollowsMakeGrid) {
  auto one = make_image_grid(torch::zeros({1, 3, 5, 7}), 4);
  EXPECT_EQ(one.sizes(), torch::IntArrayRef({5, 7, 3}));  // a single image is not padded
  EXPECT_EQ(one[0][0][0].item<int>(), 128);                // 0 -> 0.5 -> 128
  auto five = make_image_grid(torch::ones({5, 1, 4, 4}), 4);  // 4 columns, 2 rows, grey -> RGB
  EXPECT_EQ(five.sizes(), torch::IntArrayRef({2 + 2 * 6, 2 + 4 * 6, 3}));
  EXPECT_EQ(five[2][2][1].item<int>(), 255);
  EXPECT_EQ(five[1][2][0].item<int>(), 0);    // padding
  EXPECT_EQ(five[8][8][0].item<int>(), 0);    // the empty sixth cell
}

TEST(Image, PngRoundTripWithUtf8Text) {
  TempDir dir;
  auto img = random_image(9, 13, 3);
  write_png(dir / "a.png", img, {{"parameters", "ascii"}, {"Comment", "caf\xc3\xa9"}});
  EXPECT_TRUE(torch::equal(read_png(dir / "a.png"), img));
  EXPECT_TRUE(torch::equal(read_image(dir / "a.png"), img));
  auto text = read_png_text(dir / "a.png");
  EXPECT_EQ(text.at("parameters"), "ascii");
  EXPECT_EQ(text.at("Comment"), "caf\xc3\xa9");
}

#ifdef SPARSEDIT_HAVE_JPEG
TEST(Image, JpegReads) {
  TempDir dir;
  auto img = random_image(24, 40, 4);
  write_jpeg(dir / "a.jpg", img);
  auto got = read_image(dir / "a.jpg");
  ASSERT_EQ(got.sizes(), img.sizes());
  EXPECT_LT((got.to(torch::kFloat) - img.to(torch::kFloat)).abs().mean().item<float>(), 6.0f);
}
#endif

TEST(Image, PilBoxHalvingRoundsHalfUpPerPass) {
  auto img = torch::tensor({0, 1, 2, 4, 10, 11, 200, 255}, torch::kUInt8).view({2, 4, 1}).expand({2, 4, 3}).contiguous();
  auto out = pil_resize(img, 2, 1, Resample::Box);
  // rows: (0+1+1)>>1 = 1, (2+4+1)>>1 = 3 ; (10+11+1)>>1 = 11, (200+255+1)>>1 = 228; columns: (1+11+1)>>1, (3+228+1)>>1
  EXPECT_EQ(out[0][0][0].item<int>(), 6);
  EXPECT_EQ(out[0][1][2].item<int>(), 116);
}

TEST(Image, PilBicubicFixedPoint) {
  // 2 -> 4 upscale, output 0: centre 0.25, taps at 0.25 and 1.25 -> w = 0.8671875, -0.0703125,
  // normalised to 22-bit 4564390 and -370086; (2^21 + 100*4564390 - 200*370086) >> 22 = 91.
  auto img = torch::tensor({100, 200}, torch::kUInt8).view({1, 2, 1}).expand({1, 2, 3}).contiguous();
  auto out = pil_resize(img, 4, 1, Resample::Bicubic);
  EXPECT_EQ(out[0][0][0].item<int>(), 91);
  auto flat = torch::full({17, 23, 3}, 77, torch::kUInt8);
  EXPECT_TRUE(torch::equal(pil_resize(flat, 9, 31, Resample::Bicubic), torch::full({31, 9, 3}, 77, torch::kUInt8)));
}

TEST(Image, CenterCropArrSizes) {
  auto img = random_image(600, 1030, 5);  // halves once (600 >= 512), then 300 -> 256, 515 -> 439
  auto out = center_crop_arr(img, 256);
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({256, 256, 3}));
  auto direct = pil_resize(pil_resize(img, 515, 300, Resample::Box), 439, 256, Resample::Bicubic);
  EXPECT_TRUE(torch::equal(out, direct.narrow(1, (439 - 256) / 2, 256)));
  auto unit = image_to_unit_range(out);
  EXPECT_EQ(unit.sizes(), torch::IntArrayRef({3, 256, 256}));
  EXPECT_LE(unit.max().item<float>(), 1.0f);
  EXPECT_GE(unit.min().item<float>(), -1.0f);
}

TEST(Encode, FolderToDatasetRoundTrip) {
  TempDir dir;
  const std::string root = dir / "images";
  fs::create_directories(root + "/b_dogs");
  fs::create_directories(root + "/a_cats/nested");
  write_png(root + "/a_cats/x.png", random_image(40, 50, 10));
  write_png(root + "/a_cats/nested/y.PNG", random_image(70, 64, 11));
  write_file(root + "/a_cats/notes.txt", "not an image");
#ifdef SPARSEDIT_HAVE_JPEG
  write_jpeg(root + "/b_dogs/z.jpg", random_image(33, 48, 12));
#else
  write_png(root + "/b_dogs/z.png", random_image(33, 48, 12));
#endif
  EncodeFolderOptions o;
  o.images_dir = root;
  o.out_dir = dir / "ds";
  o.image_size = 32;
  o.flip = true;
  o.seed = 7;
  o.batch_size = 2;
  o.shard_size = 4;  // 6 samples -> 2 shards
  auto vae = golden_vae();
  auto r = encode_image_folder(vae, o);
  EXPECT_EQ(r.images, 3);
  EXPECT_EQ(r.samples, 6);
  EXPECT_EQ(r.skipped_files, 1);

  auto ds = LatentDataset::open(o.out_dir);
  ASSERT_EQ(ds.size(), 6);
  EXPECT_EQ(ds.classes, (std::vector<std::string>{"a_cats", "b_dogs"}));
  EXPECT_EQ(ds.num_classes, 2);
  EXPECT_TRUE(ds.flip);
  EXPECT_EQ(ds.latents.sizes(), torch::IntArrayRef({6, 4, 4, 4}));
  EXPECT_TRUE(torch::equal(ds.labels, torch::tensor({0, 0, 0, 0, 1, 1}, torch::kInt64)));

  // os.walk order sorts folder paths ("a_cats" < "a_cats/nested"), so x.png gives samples 0-1 and
  // nested/y.PNG samples 2 (as is, third noise draw) and 3 (mirrored, fourth draw).
  auto gen = at::detail::createCPUGenerator(7);
  std::vector<torch::Tensor> noise;
  for (int i = 0; i < 6; ++i) noise.push_back(torch::randn({1, 4, 4, 4}, gen, torch::kFloat32));
  auto x = image_to_unit_range(center_crop_arr(read_image(root + "/a_cats/nested/y.PNG"), 32)).unsqueeze(0);
  auto expect = vae->encode(x).sample(noise[2]) * 0.18215;
  // Batches of different sizes block the convolutions' GEMMs differently: float32 noise only.
  const double batch_noise = 1e-5;
  EXPECT_LT(rel_l2(ds.latents.narrow(0, 2, 1), expect), batch_noise);
  auto xf = x.flip({3});
  EXPECT_LT(rel_l2(ds.latents.narrow(0, 3, 1), vae->encode(xf).sample(noise[3]) * 0.18215), batch_noise);

  // The batch size changes nothing else: noise is drawn per sample.
  o.out_dir = dir / "ds1";
  o.batch_size = 1;
  encode_image_folder(vae, o);
  EXPECT_LT(rel_l2(LatentDataset::open(o.out_dir).latents, ds.latents), batch_noise);
}

TEST(Encode, BadInputsThrow) {
  TempDir dir;
  auto vae = golden_vae();
  EncodeFolderOptions o;
  o.images_dir = dir / "missing";
  o.out_dir = dir / "ds";
  o.image_size = 32;
  EXPECT_THROW(encode_image_folder(vae, o), Error);  // missing folder

  fs::create_directories(dir / "flat");
  write_png(dir / "flat/a.png", random_image(8, 8, 1));
  o.images_dir = dir / "flat";
  EXPECT_THROW(encode_image_folder(vae, o), Error);  // no class folders

  fs::create_directories(dir / "imgs/cls");
  write_png(dir / "imgs/cls/ok.png", random_image(40, 40, 2));
  o.images_dir = dir / "imgs";
  o.image_size = 30;
  EXPECT_THROW(encode_image_folder(vae, o), Error);  // not a multiple of 8
  o.image_size = 32;
  encode_image_folder(vae, o);
  EXPECT_THROW(encode_image_folder(vae, o), Error);  // dataset already there
  o.overwrite = true;
  EXPECT_NO_THROW(encode_image_folder(vae, o));

  write_file(dir / "imgs/cls/broken.png", "this is text, not a PNG");
  o.out_dir = dir / "ds2";
  EXPECT_THROW(encode_image_folder(vae, o), Error);  // non-image file with an image extension
  EXPECT_THROW(read_image(dir / "imgs/cls/broken.png"), Error);
  EXPECT_THROW(LatentDataset::open(dir / "nowhere"), Error);
  EXPECT_THROW(LatentDataset::open(dir / "ds2"), Error);  // interrupted: no meta.json
}

TEST(Vae, TiledDecodeCoversTheImage) {
  auto vae = golden_vae();
  auto z = read_safetensors(golden("vae/decode.safetensors")).at("z");
  // A tile as large as the latent is the plain decode.
  EXPECT_TRUE(torch::equal(vae->decode_latents(z, 4), decode_golden_z(vae)));
  auto tiled = vae->decode_latents(z, 2);  // 2x2-latent tiles with a 1-pixel overlap: 3x3 tiles
  EXPECT_EQ(tiled.sizes(), torch::IntArrayRef({2, 3, 32, 32}));
  EXPECT_TRUE(torch::isfinite(tiled).all().item<bool>());
  // The top-left 8x8 pixels lie in the first tile only (the blend ramp starts at pixel 8).
  auto first = vae->decode(z.narrow(2, 0, 2).narrow(3, 0, 2) / 0.18215);
  EXPECT_LT(rel_l2(tiled.narrow(2, 0, 8).narrow(3, 0, 8), first.narrow(2, 0, 8).narrow(3, 0, 8)), 1e-6);
  EXPECT_THROW(vae->decode_latents(z, 1), Error);
}

TEST(Vae, BadInputsThrow) {
  auto vae = golden_vae();
  EXPECT_THROW(vae->decode_latents(torch::zeros({1, 3, 4, 4})), Error);  // wrong latent channels
  EXPECT_THROW(vae->decode_latents(torch::zeros({4, 4, 4})), Error);
  EXPECT_THROW(vae->encode(torch::zeros({1, 3, 30, 30})), Error);
  EXPECT_THROW(load_vae("/nonexistent/vae"), Error);
  TempDir dir;
  auto path = write_variant(
      dir, "bad", [](const std::string& k) { return k == "decoder.conv_in.bias" ? std::string("decoder.conv_in.b") : k; },
      [](const std::string&, const torch::Tensor& t) { return t; }, true);
  EXPECT_THROW(load_vae(path), Error);
  write_file(dir / "bad/config.json", "{\"block_out_channels\": [32, 64], \"layers_per_block\": 2}");
  EXPECT_THROW(load_vae(path), Error);
}

// Run alone, in its own process, to read the peak RSS of one 512-px decode with the real SD VAE
// widths (random weights):
//   test_vae --gtest_also_run_disabled_tests --gtest_filter='*PeakMemory*'
TEST(VaePerf, DISABLED_PeakMemory512) {
  const char* tile_env = std::getenv("SDIT_VAE_TILE");
  const int64_t tile = tile_env ? std::atoll(tile_env) : 0;
  torch::manual_seed(0);
  AutoencoderKL vae(VAEConfig{});
  vae->eval();
  auto z = torch::randn({1, 4, 64, 64});
  auto img = vae->decode_latents(z, tile);
  EXPECT_EQ(img.sizes(), torch::IntArrayRef({1, 3, 512, 512}));
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM", 0) == 0 || line.rfind("VmRSS", 0) == 0) std::printf("%s (tile %lld)\n", line.c_str(), (long long)tile);
}

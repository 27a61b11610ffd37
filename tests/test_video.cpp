// Video files (io/video.h): every format this build writes is decoded back with the same library and
// checked for frame count, size, frame rate and content; hostile bytes are clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "error_testing.h"
#include "io/file_util.h"
#include "io/video.h"
#include "testing.h"
#include "util/error.h"

using namespace sdit;

namespace {

// Smooth content that moves from frame to frame (lossy codecs keep it well): colour gradients plus
// a bright square sliding right.
torch::Tensor test_frames(int64_t F, int64_t H, int64_t W) {
  auto y = torch::arange(H, torch::kFloat).view({1, H, 1});
  auto x = torch::arange(W, torch::kFloat).view({1, 1, W});
  std::vector<torch::Tensor> frames;
  for (int64_t f = 0; f < F; ++f) {
    auto r = (x * 255.0 / W + 20.0 * f).remainder(256.0).expand({1, H, W});
    auto g = (y * 255.0 / H).expand({1, H, W});
    auto b = torch::full({1, H, W}, 60.0 + 30.0 * f);
    auto rgb = torch::cat({r, g, b}, 0).permute({1, 2, 0}).contiguous();
    rgb.narrow(0, H / 4, H / 3).narrow(1, (W / 8) * (f % 4), W / 4).fill_(240.0);
    frames.push_back(rgb);
  }
  return torch::stack(frames).round().clamp(0, 255).to(torch::kUInt8);
}

double psnr(const torch::Tensor& a, const torch::Tensor& b) {
  const double mse = (a.to(torch::kDouble) - b.to(torch::kDouble)).pow(2).mean().item<double>();
  return mse == 0 ? 1e9 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

struct FormatCase {
  std::string ext;
  VideoFormat format;
  bool lossless;
  double min_psnr;  // lossy formats: the decoded frames against the written ones
};

}  // namespace

TEST(Video, EveryFormatDecodesBackWithItsFramesSizeRateAndContent) {
  // Lossy formats on this hard-edged content measure 26-35 dB; a wrong or garbled frame is under 15.
  const std::vector<FormatCase> cases = {{"mp4", VideoFormat::Mp4, false, 25.0},
                                         {"webp", VideoFormat::WebP, true, 99.0},
                                         {"webp", VideoFormat::WebP, false, 25.0},
                                         {"gif", VideoFormat::Gif, false, 25.0}};
  int checked = 0;
  for (const auto& c : cases) {
    if (!video_format_available(c.format)) {
      std::cout << "[ skipped ] " << c.ext << ": built without its library\n";
      continue;
    }
    for (auto [H, W] : std::vector<std::pair<int64_t, int64_t>>{{48, 64}, {27, 33}}) {
      SCOPED_TRACE(c.ext + (c.lossless ? " lossless " : " ") + std::to_string(W) + "x" + std::to_string(H));
      const auto frames = test_frames(6, H, W);
      const auto path = temp_path("video_" + std::to_string(W) + (c.lossless ? "_ll." : ".") + c.ext);
      VideoWriteOptions o;
      o.fps = 8;
      o.lossless = c.lossless;
      write_video(path, frames, o);
      const Video v = read_video(path);
      ASSERT_EQ(v.frames.dim(), 4);
      EXPECT_EQ(v.frames.size(0), 6);
      EXPECT_EQ(v.frames.size(3), 3);
      // 4:2:0 MP4 pads odd sides by one repeated row/column; the picture itself is unchanged.
      const int64_t pad_h = c.format == VideoFormat::Mp4 ? H % 2 : 0, pad_w = c.format == VideoFormat::Mp4 ? W % 2 : 0;
      ASSERT_EQ(v.frames.size(1), H + pad_h);
      ASSERT_EQ(v.frames.size(2), W + pad_w);
      EXPECT_NEAR(v.fps, 8.0, 0.05);
      const auto decoded = v.frames.narrow(1, 0, H).narrow(2, 0, W);
      if (c.lossless) {
        EXPECT_TRUE(torch::equal(decoded, frames));
      }
      for (int64_t f = 0; f < 6; ++f) EXPECT_GT(psnr(decoded[f], frames[f]), c.min_psnr) << "frame " << f;
      // Frames stay in order: each decoded frame is closest to the frame written at its index.
      for (int64_t f = 0; f + 1 < 6; ++f) EXPECT_GT(psnr(decoded[f], frames[f]), psnr(decoded[f], frames[f + 1]));
      // The in-memory reader (what the fuzz targets drive) agrees with the file reader.
      const auto bytes = file_bytes(path);
      EXPECT_TRUE(torch::equal(read_video_memory(bytes.data(), bytes.size()).frames, v.frames));
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no video format is available in this build";
}

TEST(Video, Mp4IsH264WhenDebiansFfmpegHasIt) {
  if (!video_format_available(VideoFormat::Mp4)) GTEST_SKIP() << "built without FFmpeg";
  const std::string enc = mp4_encoder_description();
  std::cout << "[ info ] MP4 encoder: " << enc << "\n";
  EXPECT_NE(enc.find("H.264"), std::string::npos) << enc;
  // The file is an ISO-BMFF MP4 whose index comes first (+faststart), so it plays while downloading.
  const auto path = temp_path("faststart.mp4");
  write_video(path, test_frames(3, 16, 16));
  const auto bytes = file_bytes(path);
  const std::string head(bytes.begin(), bytes.begin() + std::min<size_t>(bytes.size(), 64));
  EXPECT_NE(head.find("ftyp"), std::string::npos);
  const std::string all(bytes.begin(), bytes.end());
  EXPECT_LT(all.find("moov"), all.find("mdat"));
}

TEST(Video, BadInputsAreClearErrors) {
  const auto frames = test_frames(2, 8, 8);
  EXPECT_THROW(write_video(temp_path("x.avi"), frames), Error);                           // not a video extension
  EXPECT_THROW(write_video(temp_path("x.gif"), frames.to(torch::kFloat)), Error);         // not uint8
  EXPECT_THROW(write_video(temp_path("x.gif"), frames.narrow(3, 0, 1)), Error);           // not RGB
  VideoWriteOptions bad;
  bad.fps = 0;
  EXPECT_THROW(write_video(temp_path("x.gif"), frames, bad), Error);
  const std::string junk = "GIF89a this is not really a gif at all";
  EXPECT_THROW(read_video_memory(reinterpret_cast<const uint8_t*>(junk.data()), junk.size()), Error);
  const std::string riff = "RIFF\x10\0\0\0WEBPVP8 garbage";
  EXPECT_THROW(read_video_memory(reinterpret_cast<const uint8_t*>(riff.data()), riff.size()), Error);
  EXPECT_THROW(read_video_memory(reinterpret_cast<const uint8_t*>(junk.data()) + 6, junk.size() - 6), Error);
  EXPECT_THROW(read_video(temp_path("missing.mp4")), Error);
  // Truncated files of every available format.
  for (const char* ext : {"mp4", "webp", "gif"}) {
    const auto fmt = *video_format_of_path(std::string("x.") + ext);
    if (!video_format_available(fmt)) continue;
    SCOPED_TRACE(ext);
    const auto path = temp_path(std::string("trunc.") + ext);
    write_video(path, test_frames(4, 32, 32));
    auto bytes = file_bytes(path);
    bytes.resize(bytes.size() / 3);
    EXPECT_THROW(read_video_memory(bytes.data(), bytes.size()), Error);
  }
}

// A WebP header may declare a canvas of up to 2^32 pixels in a few bytes, and libwebp's animation
// decoder allocates two RGBA canvases of that size on opening (the fuzzer's first WebP finding).
// The reader checks the canvas from the header before: too large is refused at once, a large but
// affordable canvas still decodes.
TEST(Video, AWebPCanvasIsCheckedFromItsHeaderBeforeTheDecoderAllocatesIt) {
  if (!video_format_available(VideoFormat::WebP)) GTEST_SKIP() << "built without libwebp";
  const auto path = temp_path("canvas.webp");
  write_video(path, test_frames(2, 8, 8));
  const auto bytes = file_bytes(path);
  ASSERT_GT(bytes.size(), 30u);
  ASSERT_EQ(std::string(bytes.begin() + 12, bytes.begin() + 16), "VP8X");  // animations carry the canvas here
  // VP8X payload: flags, 3 reserved bytes, then canvas width − 1 and height − 1 as 24-bit little-endian.
  auto with_canvas = [&](uint32_t w, uint32_t h) {
    auto b = bytes;
    for (int i = 0; i < 3; ++i) {
      b[24 + i] = static_cast<uint8_t>((w - 1) >> (8 * i));
      b[27 + i] = static_cast<uint8_t>((h - 1) >> (8 * i));
    }
    return b;
  };
  constexpr int64_t kBudget = int64_t(64) << 20;
  const auto wide = with_canvas(1u << 24, 200);  // 3.4 G pixels: over the side limit
  expect_error([&] { read_webp_memory(wide.data(), wide.size()); }, "16777216x200 is outside 1..16384");
  const auto big = with_canvas(4096, 4096);  // one RGB frame (48 MiB) fits; the two RGBA canvases do not
  expect_error([&] { read_webp_memory(big.data(), big.size(), kBudget); }, "4096x4096 canvas needs 128 MiB");
  const auto fits = with_canvas(1000, 600);  // the two 8x8 frames sit at the top left of a larger canvas
  const auto v = read_webp_memory(fits.data(), fits.size(), kBudget);
  EXPECT_EQ(v.frames.sizes(), torch::IntArrayRef({2, 600, 1000, 3}));
}

#include "cli/video_output.h"

#include <cstdio>
#include <filesystem>

#include "io/image.h"
#include "io/video.h"
#include "util/error.h"

namespace sdit::cli {

torch::Tensor decode_video_samples(const torch::Tensor& samples, const LatentSpec& latent, AutoencoderKL* vae,
                                   int64_t vae_batch, const torch::Device& device) {
  if (samples.dim() != 5) fail("video outputs need a video model's samples, got ", samples.sizes());
  const int64_t n = samples.size(0), F = latent.frames;
  auto frames = latent.frames_as_images(samples);  // (n·F, C, h, w), each sample's frames in order
  if (vae) {
    if (vae_batch < 1) fail("--vae-batch must be positive, got ", vae_batch);
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < frames.size(0); i += vae_batch)
      out.push_back((*vae)->decode_latents(frames.narrow(0, i, std::min(vae_batch, frames.size(0) - i)).to(device))
                        .to(torch::kCPU));
    frames = torch::cat(out, 0);
  }
  if (frames.size(1) != 3 && frames.size(1) != 1)
    fail("decoded frames have ", frames.size(1), " channels; a video needs 1 or 3 (pass --vae DIR for latents)");
  if (frames.size(1) == 1) frames = frames.expand({-1, 3, -1, -1});
  return frames.reshape({n, F, 3, frames.size(2), frames.size(3)});
}

namespace {

// torchvision's normalize=True, value_range=(-1, 1) then save_image's rounding: the same bytes as
// Latte's ((x·0.5 + 0.5)·255 + 0.5).clamp(0, 255) for a single sample.
torch::Tensor frame_grid(const torch::Tensor& videos, int64_t f, int64_t nrow) {
  return make_image_grid(videos.select(1, f), nrow);
}

void write_frames_dir(const torch::Tensor& videos, const VideoOutputOptions& opt) {
  std::error_code ec;
  std::filesystem::create_directories(opt.frames_dir, ec);
  if (ec) fail("cannot create --frames-dir '", opt.frames_dir, "': ", ec.message());
  for (int64_t s = 0; s < videos.size(0); ++s)
    for (int64_t f = 0; f < videos.size(1); ++f) {
      char name[64];
      std::snprintf(name, sizeof name, "/s%03lld_f%03lld.png", static_cast<long long>(s), static_cast<long long>(f));
      write_png(opt.frames_dir + name, make_image_grid(videos[s].narrow(0, f, 1), 1), opt.png_text);
    }
}

}  // namespace

void write_video_outputs(const torch::Tensor& videos, const VideoOutputOptions& opt, const Log& log) {
  const int64_t n = videos.size(0), F = videos.size(1);
  if (!opt.frames_dir.empty()) {
    write_frames_dir(videos, opt);
    log.info("wrote " + std::to_string(n * F) + " PNG frames to " + opt.frames_dir);
  }
  if (opt.output.empty()) return;
  if (!video_format_of_path(opt.output)) {
    // Any other name: one PNG, one row of frames per sample.
    save_image_grid(videos.flatten(0, 1), F, opt.output, opt.png_text);
    return;
  }
  std::vector<torch::Tensor> frames;
  for (int64_t f = 0; f < F; ++f) frames.push_back(frame_grid(videos, f, opt.nrow));
  VideoWriteOptions w;
  w.fps = opt.fps;
  write_video(opt.output, torch::stack(frames), w);
}

std::string video_output_note(const std::string& output) {
  const auto fmt = video_format_of_path(output);
  if (fmt != VideoFormat::Mp4) return "";
  return "MP4 encoder: " + mp4_encoder_description();
}

}  // namespace sdit::cli

// Video format dispatch and the checks every backend shares (io/video.h); the backends are
// video_ffmpeg.cpp, video_webp.cpp and video_gif.cpp.
#include "io/video.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "io/file_util.h"
#include "util/error.h"

namespace sdit {

// Defined by the backends.
void write_mp4(const std::string& path, const torch::Tensor& frames, const VideoWriteOptions& opt);
void write_webp_animation(const std::string& path, const torch::Tensor& frames, const VideoWriteOptions& opt);
void write_gif(const std::string& path, const torch::Tensor& frames, const VideoWriteOptions& opt);
Video read_ffmpeg_file(const std::string& path);
bool ffmpeg_available();
bool webp_available();
bool gif_available();

std::optional<VideoFormat> video_format_of_path(const std::string& path) {
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return std::nullopt;
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == "mp4") return VideoFormat::Mp4;
  if (ext == "webp") return VideoFormat::WebP;
  if (ext == "gif") return VideoFormat::Gif;
  return std::nullopt;
}

const char* video_format_name(VideoFormat f) {
  switch (f) {
    case VideoFormat::Mp4: return "MP4";
    case VideoFormat::WebP: return "WebP";
    case VideoFormat::Gif: return "GIF";
  }
  return "?";
}

bool video_format_available(VideoFormat f) {
  switch (f) {
    case VideoFormat::Mp4: return ffmpeg_available();
    case VideoFormat::WebP: return webp_available();
    case VideoFormat::Gif: return gif_available();
  }
  return false;
}

torch::Tensor checked_frames(const torch::Tensor& frames) {
  if (!frames.defined() || frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    fail("video frames must be a uint8 tensor (frames, height, width, 3), got ",
         frames.defined() ? shape_str(frames.sizes().vec()) : std::string("nothing"));
  if (frames.size(0) < 1 || frames.size(1) < 1 || frames.size(2) < 1) fail("a video needs at least one non-empty frame");
  if (frames.size(1) > kMaxVideoSide || frames.size(2) > kMaxVideoSide)
    fail("video frames of ", frames.size(2), "x", frames.size(1), " exceed the ", kMaxVideoSide, "-pixel side limit");
  return frames.to(torch::kCPU).contiguous();
}

void check_video_budget(int64_t w, int64_t h, int64_t have, const char* what, int64_t max_bytes) {
  if (w < 1 || h < 1 || w > kMaxVideoSide || h > kMaxVideoSide)
    fail(what, ": frame size ", w, "x", h, " is outside 1..", kMaxVideoSide);
  if ((have + 1) * w * h * 3 > max_bytes)
    fail(what, ": more than ", max_bytes >> 20, " MiB of decoded frames (", have + 1, " frames of ", w, "x", h, ")");
}

void write_bytes_atomically(const std::string& path, const void* data, size_t size) {
  AtomicFile f(path);
  f.write(data, size);
  f.commit();
}

void write_video(const std::string& path, const torch::Tensor& frames_in, const VideoWriteOptions& opt) {
  const auto fmt = video_format_of_path(path);
  if (!fmt) fail("'", path, "' is not a video file name: use .mp4, .webp or .gif");
  if (!video_format_available(*fmt))
    fail("cannot write '", path, "': this sparsedit was built without ", *fmt == VideoFormat::Mp4 ? "FFmpeg (libavcodec-dev, libavformat-dev, libswscale-dev)"
                                                                      : *fmt == VideoFormat::WebP ? "libwebp (libwebp-dev)"
                                                                                                  : "giflib (libgif-dev)",
         "; install it and rebuild (scripts/setup.sh), or write .webp/.gif/--frames-dir");
  if (!(opt.fps > 0 && opt.fps <= 1000)) fail("video frame rate must be in (0, 1000], got ", opt.fps);
  const auto frames = checked_frames(frames_in);
  switch (*fmt) {
    case VideoFormat::Mp4: write_mp4(path, frames, opt); break;
    case VideoFormat::WebP: write_webp_animation(path, frames, opt); break;
    case VideoFormat::Gif: write_gif(path, frames, opt); break;
  }
}

Video read_video_memory(const uint8_t* data, size_t size, int64_t max_bytes) {
  if (size >= 6 && (std::memcmp(data, "GIF87a", 6) == 0 || std::memcmp(data, "GIF89a", 6) == 0))
    return read_gif_memory(data, size, max_bytes);
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0)
    return read_webp_memory(data, size, max_bytes);
  return read_ffmpeg_memory(data, size, max_bytes);
}

Video read_video(const std::string& path) {
  if (!is_regular_file(path)) fail("video file '", path, "' does not exist");
  try {
    char head[12] = {};
    std::ifstream in(path, std::ios::binary);
    in.read(head, sizeof head);
    const bool gif = std::memcmp(head, "GIF8", 4) == 0;
    const bool webp = std::memcmp(head, "RIFF", 4) == 0 && std::memcmp(head + 8, "WEBP", 4) == 0;
    // FFmpeg reads containers itself (seeking, large files); GIF and WebP are decoded from memory.
    if (!gif && !webp) return read_ffmpeg_file(path);
    auto map = MappedFile::open(path);
    return read_video_memory(map->data(), map->size());
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

}  // namespace sdit

#pragma once
// Video files: what `sample` writes for a video model and what `encode` reads for video datasets.
// Frames are uint8 tensors (F, H, W, 3), RGB, contiguous, on the CPU.
//
// Writing, chosen by the extension:
//   .mp4   H.264 through Debian's FFmpeg libraries (libx264, yuv420p, CRF 18, +faststart), MPEG-4
//          Part 2 where that FFmpeg has no H.264 encoder; an odd width or height is padded by
//          repeating the last column or row (4:2:0 chroma needs even sizes)
//   .webp  animated WebP (libwebpmux's WebPAnimEncoder), lossy quality 90 or lossless
//   .gif   animated GIF (giflib): one 256-colour palette per frame (GifQuantizeBuffer), delays in
//          hundredths of a second, looping forever
// Reading is by content: animated or still WebP, GIF (every disposal mode, transparency,
// interlacing), and everything else through FFmpeg (MP4, MOV, MKV, AVI, WebM, ... with any codec it
// decodes). Every reader bounds what it allocates (side, frame count, total bytes) before decoding.
// A library the build was configured without makes its formats a clear error (video_format_available).
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace sdit {

enum class VideoFormat { Mp4, WebP, Gif };

struct Video {
  torch::Tensor frames;  // (F, H, W, 3) uint8
  double fps = 0.0;      // 0 when the file does not say
};

struct VideoWriteOptions {
  double fps = 8.0;      // Latte's sample.py writes 8 frames per second
  int quality = 90;      // WebP (0..100)
  bool lossless = false; // WebP only; MP4 and GIF are always lossy
};

// Largest frame side and total decoded size a reader accepts.
inline constexpr int64_t kMaxVideoSide = 16384;
inline constexpr int64_t kMaxVideoBytes = int64_t{1} << 31;

// The format an output path asks for by its extension (case-insensitive); nullopt when it names none.
std::optional<VideoFormat> video_format_of_path(const std::string& path);
const char* video_format_name(VideoFormat f);  // "MP4", "WebP", "GIF"
// Whether this build can write (and read) the format.
bool video_format_available(VideoFormat f);
// What .mp4 files are encoded with: "libx264 (H.264)", "mpeg4 (MPEG-4 Part 2)", or why none.
std::string mp4_encoder_description();

// Throws sdit::Error naming the path on a bad extension, a missing library or a failed encode.
// The file appears atomically (written to a temporary name first).
void write_video(const std::string& path, const torch::Tensor& frames, const VideoWriteOptions& opt = {});

// By content; throws sdit::Error naming the path when it is no video this build decodes.
Video read_video(const std::string& path);
// The same on bytes in memory (the fuzz targets drive these, with a smaller `max_bytes` of decoded
// frames so that each input stays within libFuzzer's memory limit).
Video read_video_memory(const uint8_t* data, size_t size, int64_t max_bytes = kMaxVideoBytes);
Video read_gif_memory(const uint8_t* data, size_t size, int64_t max_bytes = kMaxVideoBytes);
Video read_webp_memory(const uint8_t* data, size_t size, int64_t max_bytes = kMaxVideoBytes);
Video read_ffmpeg_memory(const uint8_t* data, size_t size, int64_t max_bytes = kMaxVideoBytes);

// ---- shared by the format backends -----------------------------------------------------------
// Checks frames (F, H, W, 3) uint8 and returns it contiguous on the CPU.
torch::Tensor checked_frames(const torch::Tensor& frames);
// Throws unless one more frame of w × h fits the side and total-size limits (`have` frames so far).
void check_video_budget(int64_t w, int64_t h, int64_t have, const char* what, int64_t max_bytes = kMaxVideoBytes);
void write_bytes_atomically(const std::string& path, const void* data, size_t size);

}  // namespace sdit

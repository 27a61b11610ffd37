#pragma once
// Shared by the video fuzz targets (fuzz/fuzz_video_*.cpp, fuzz/README.md's form): seeds written by
// the project's own writer, and the check on every decoded video.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "common.h"
#include "io/file_util.h"
#include "io/video.h"

namespace sdit::fuzz {

// Decoded frames a target accepts: 64 MiB keeps each input well inside libFuzzer's -rss_limit_mb,
// while the readers' own limit (io/video.h: kMaxVideoBytes) is what real files get.
constexpr int64_t kFuzzMaxVideoBytes = int64_t(64) << 20;

// A small clip with motion, colour and a non-square, odd-sized frame, encoded by write_video into
// the container `ext` names ("mp4", "webp", "gif"); empty when this build cannot write it.
inline std::string video_seed_bytes(const std::string& ext, int64_t frames, int64_t h, int64_t w,
                                    const VideoWriteOptions& opt = {}) {
  const auto fmt = video_format_of_path("seed." + ext);
  if (!fmt || !video_format_available(*fmt)) return {};
  auto base = torch::linspace(0, 255, h * w * 3).view({h, w, 3});
  std::vector<torch::Tensor> f;
  for (int64_t i = 0; i < frames; ++i) f.push_back(base.roll({7 * i}, {1}));
  const auto clip = torch::stack(f).round().to(torch::kUInt8).contiguous();
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  const auto path = (std::filesystem::temp_directory_path() / ("sparsedit_seed_" + std::to_string(stamp) + "." + ext)).string();
  write_video(path, clip, opt);
  std::string bytes = read_text_file(path);
  std::filesystem::remove(path);
  return bytes;
}

inline void write_video_seed(const std::string& dir, const std::string& name, const std::string& bytes) {
  if (!bytes.empty()) write_seed(dir, name, bytes);
}

// What every video reader promises: frames (F, H, W, 3) uint8, contiguous, within the budget.
inline void check_video(const Video& v) {
  const auto& t = v.frames;
  if (!t.defined() || t.dim() != 4 || t.size(0) < 1 || t.size(3) != 3 || t.scalar_type() != torch::kUInt8 ||
      !t.is_contiguous())
    unexpected("a video that is not (F, H, W, 3) uint8", t.defined() ? shape_str(t.sizes().vec()) : "undefined");
  if (t.numel() > kFuzzMaxVideoBytes) unexpected("a video over the decode budget", shape_str(t.sizes().vec()));
  if (!(v.fps >= 0)) unexpected("a negative or NaN frame rate", std::to_string(v.fps));
  check_tensor(t);
}

}  // namespace sdit::fuzz

#include "data/video_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "data/image_folder.h"
#include "io/image.h"
#include "io/video.h"
#include "util/error.h"

namespace sdit {

namespace fs = std::filesystem;

namespace {

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool is_video_file(const fs::path& p) {
  static const char* exts[] = {".mp4", ".webm", ".mkv", ".avi", ".mov", ".gif", ".webp"};
  const std::string ext = lower_extension(p);
  return std::any_of(std::begin(exts), std::end(exts), [&](const char* e) { return ext == e; });
}

bool is_frame_file(const fs::path& p) {
  const std::string ext = lower_extension(p);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

std::vector<std::string> sorted_frame_files(const std::string& dir) {
  return sorted_entries(dir, [](const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_regular_file(ec) && is_frame_file(e.path());
  });
}

}  // namespace

VideoFolderIndex scan_video_folder(const std::string& root) {
  VideoFolderIndex idx;
  idx.classes = class_folders(root, "video folder", "ROOT/<class>/<clip folder or video file>");
  for (size_t c = 0; c < idx.classes.size(); ++c) {
    const std::string dir = root + "/" + idx.classes[c];
    auto clips = sorted_entries(dir, [&](const fs::directory_entry& e) {
      std::error_code ec;
      const bool clip = e.is_directory(ec) || (e.is_regular_file(ec) && is_video_file(e.path()));
      if (!clip) ++idx.skipped;
      return clip;
    });
    if (clips.empty()) fail("class folder '", dir, "' holds no clips (frame folders or video files)");
    for (auto& clip : clips) {
      idx.clips.push_back(std::move(clip));
      idx.labels.push_back(static_cast<int64_t>(c));
    }
  }
  return idx;
}

torch::Tensor read_clip_frames(const std::string& clip, int64_t frames, int64_t interval) {
  if (frames < 1 || interval < 1) fail("clips need at least 1 frame taken at an interval of at least 1");
  const int64_t need = (frames - 1) * interval + 1;
  std::vector<torch::Tensor> out;
  if (fs::is_directory(clip)) {
    const auto files = sorted_frame_files(clip);
    if (static_cast<int64_t>(files.size()) < need)
      fail("clip '", clip, "' has ", files.size(), " frames; ", frames, " frames ", interval, " apart need ", need);
    for (int64_t f = 0; f < frames; ++f) out.push_back(read_image(files[static_cast<size_t>(f * interval)]));
  } else {
    const Video v = read_video(clip);
    if (v.frames.size(0) < need)
      fail("clip '", clip, "' has ", v.frames.size(0), " frames; ", frames, " frames ", interval, " apart need ", need);
    for (int64_t f = 0; f < frames; ++f) out.push_back(v.frames[f * interval]);
  }
  for (const auto& f : out)
    if (!f.sizes().equals(out[0].sizes()))
      fail("clip '", clip, "': its frames differ in size (", shape_str(out[0].sizes().vec()), " and ",
           shape_str(f.sizes().vec()), ")");
  return torch::stack(out);
}

}  // namespace sdit

#pragma once
// Video datasets laid out as ImageFolder one level deeper: ROOT/<class>/<clip>, where a clip is a
// folder of frame images (in sorted file-name order) or a video file (.mp4, .webm, .mkv, .avi, .mov,
// .gif, .webp; io/video.h). Classes are the sorted sub-folder names (label = index), clips are sorted
// by name. From each clip, `frames` frames are taken `interval` apart from its first frame (Latte's
// datasets sample frame_interval apart from a random start; the start is 0 here, so an encoding
// depends on its seed only).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sdit {

struct VideoFolderIndex {
  std::vector<std::string> classes;
  std::vector<std::string> clips;  // paths: frame folders or video files
  std::vector<int64_t> labels;
  int64_t skipped = 0;  // entries that are neither a frame folder nor a video file
};

// Throws sdit::Error when root is missing, has no class folders, or a class has no clips.
VideoFolderIndex scan_video_folder(const std::string& root);

// The clip's frames 0, interval, 2·interval, ... (`frames` of them) as uint8 (frames, H, W, 3);
// throws naming the clip when it is shorter than that or its frames differ in size.
torch::Tensor read_clip_frames(const std::string& clip, int64_t frames, int64_t interval);

}  // namespace sdit

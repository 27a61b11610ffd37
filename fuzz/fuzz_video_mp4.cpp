// libFuzzer target: the FFmpeg container reader (MP4/MOV/MKV/AVI/WebM/... through Debian's libavformat and
// libavcodec, within the demuxer whitelist of io/video_ffmpeg.cpp) must answer every input with frames within
// io/video.h's limits or one sdit::Error, never a crash, a hang or an unbounded allocation. Seeds: a few-frame
// H.264 MP4 and an MPEG-4 AVI written by `sparsedit sample -o x.mp4` (tests/test_video.cpp writes such files),
// plus FFmpeg's own small samples; dictionary: "ftyp", "moov", "mdat", "avc1", "RIFF", "AVI ", "\x1aE\xdf\xa3".
#include <cstddef>
#include <cstdint>

#include "io/video.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sdit::Video v = sdit::read_ffmpeg_memory(data, size);
    if (v.frames.dim() != 4 || v.frames.size(3) != 3 || v.frames.numel() > sdit::kMaxVideoBytes) __builtin_trap();
  } catch (const sdit::Error&) {
  }
  return 0;
}

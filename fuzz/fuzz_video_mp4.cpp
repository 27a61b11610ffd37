// libFuzzer target: the FFmpeg reader (io/video_ffmpeg.cpp: libavformat's demuxers within its
// whitelist, then libavcodec's decoders, from memory) on arbitrary bytes. Seeds: H.264 MP4s as
// `sample -o x.mp4` writes them (MPEG-4 Part 2 where Debian's FFmpeg lacks libx264). Dictionary worth
// giving: "ftyp", "moov", "mdat", "avc1", "avcC", "trak", "RIFF", "AVI ", "\x1aE\xdf\xa3".
#include "video_common.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  write_video_seed(dir, "three_frames.mp4", video_seed_bytes("mp4", 3, 16, 24));
  write_video_seed(dir, "odd_size.mp4", video_seed_bytes("mp4", 2, 9, 14));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sdit::fuzz::run_reader([&] { sdit::fuzz::check_video(sdit::read_ffmpeg_memory(data, size, sdit::fuzz::kFuzzMaxVideoBytes)); });
  return 0;
}

// libFuzzer target: the WebP reader (io/video_webp.cpp: libwebp's WebPAnimDecoder, animated or
// still) on arbitrary bytes. Dictionary worth giving: "RIFF", "WEBP", "VP8X", "ANIM", "ANMF", "VP8L", "VP8 ".
#include "video_common.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  VideoWriteOptions lossless;
  lossless.lossless = true;
  write_video_seed(dir, "lossy_three_frames.webp", video_seed_bytes("webp", 3, 9, 14));
  write_video_seed(dir, "lossless_two_frames.webp", video_seed_bytes("webp", 2, 6, 5, lossless));
  write_video_seed(dir, "still.webp", video_seed_bytes("webp", 1, 8, 8));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sdit::fuzz::run_reader([&] { sdit::fuzz::check_video(sdit::read_webp_memory(data, size, sdit::fuzz::kFuzzMaxVideoBytes)); });
  return 0;
}

// libFuzzer target: the GIF reader (io/video_gif.cpp: giflib records composed onto the logical
// screen with every disposal mode, transparency and interlacing) on arbitrary bytes.
// Dictionary worth giving: "GIF89a", "GIF87a", "NETSCAPE2.0", "\x21\xf9\x04", "\x2c", "\x3b".
#include "video_common.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  write_video_seed(dir, "three_frames.gif", video_seed_bytes("gif", 3, 9, 14));
  write_video_seed(dir, "one_frame.gif", video_seed_bytes("gif", 1, 5, 4));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sdit::fuzz::run_reader([&] { sdit::fuzz::check_video(sdit::read_gif_memory(data, size, sdit::fuzz::kFuzzMaxVideoBytes)); });
  return 0;
}

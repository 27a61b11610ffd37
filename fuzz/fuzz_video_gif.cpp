// libFuzzer target: the GIF reader (giflib records composed by io/video_gif.cpp: disposal modes, transparency,
// interlacing, clipping) must answer every input with frames within io/video.h's limits or one sdit::Error,
// never a crash, a hang or an unbounded allocation. Seeds: GIFs written by write_video (tests/test_video.cpp),
// an interlaced GIF, one with DISPOSE_PREVIOUS frames and a transparent index; dictionary: "GIF89a", "GIF87a",
// "NETSCAPE2.0", "\x21\xf9\x04", "\x2c", "\x3b".
#include <cstddef>
#include <cstdint>

#include "io/video.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sdit::Video v = sdit::read_gif_memory(data, size);
    if (v.frames.dim() != 4 || v.frames.size(3) != 3 || v.frames.numel() > sdit::kMaxVideoBytes) __builtin_trap();
  } catch (const sdit::Error&) {
  }
  return 0;
}

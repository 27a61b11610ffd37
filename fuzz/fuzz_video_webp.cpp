// libFuzzer target: the animated/still WebP reader (libwebp's WebPAnimDecoder) must answer every input with
// frames within io/video.h's limits or one sdit::Error, never a crash, a hang or an unbounded allocation. Seeds:
// a 3-frame lossless and a lossy animated WebP written by write_video (tests/test_video.cpp), a still WebP;
// dictionary: "RIFF", "WEBP", "VP8X", "ANIM", "ANMF", "VP8L", "VP8 ".
#include <cstddef>
#include <cstdint>

#include "io/video.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sdit::Video v = sdit::read_webp_memory(data, size);
    if (v.frames.dim() != 4 || v.frames.size(3) != 3 || v.frames.numel() > sdit::kMaxVideoBytes) __builtin_trap();
  } catch (const sdit::Error&) {
  }
  return 0;
}

// libFuzzer target: PNG decoding (io/image.h, libpng with the project's limits) on arbitrary
// bytes (chunk CRCs made valid), then the ADM centre crop (io/image_resize.cpp) on what decodes.
#include "common.h"
#include "image_builders.h"
#include "io/image.h"
#include "io/zip.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  write_seed(dir, "rgb8.png", png_bytes(PNG_COLOR_TYPE_RGB, 8, false, 9, 7, true));
  write_seed(dir, "rgba16_interlaced.png", png_bytes(PNG_COLOR_TYPE_RGB_ALPHA, 16, true, 13, 10, false));
  write_seed(dir, "gray1.png", png_bytes(PNG_COLOR_TYPE_GRAY, 1, false, 17, 5, false));
  write_seed(dir, "gray_alpha8.png", png_bytes(PNG_COLOR_TYPE_GRAY_ALPHA, 8, true, 6, 6, false));
  write_seed(dir, "palette8_trns.png", png_bytes(PNG_COLOR_TYPE_PALETTE, 8, false, 8, 8, true));
  write_seed(dir, "palette2.png", png_bytes(PNG_COLOR_TYPE_PALETTE, 2, true, 10, 3, false));
}

}  // namespace sdit::fuzz

namespace {

// Mutations almost always break a chunk's CRC, which libpng rejects first; recomputing every CRC
// lets them reach the chunk parsers and the pixel decoder (OSS-Fuzz's libpng target ignores CRCs
// for the same reason). The reader itself keeps checking them.
std::string with_fixed_crcs(const uint8_t* data, size_t size) {
  std::string png(reinterpret_cast<const char*>(data), size);
  size_t pos = 8;
  while (size >= pos + 12) {
    const auto* p = reinterpret_cast<const uint8_t*>(png.data()) + pos;
    const uint64_t len = uint64_t(p[0]) << 24 | uint64_t(p[1]) << 16 | uint64_t(p[2]) << 8 | p[3];
    if (len > size - pos - 12) break;
    const uint32_t crc = sdit::crc32(p + 4, len + 4);
    for (int i = 0; i < 4; ++i) png[pos + 8 + len + i] = static_cast<char>(crc >> (24 - 8 * i));
    pos += 12 + len;
  }
  return png;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdit;
  const std::string png = with_fixed_crcs(data, size);
  fuzz::run_reader([&] {
    const torch::Tensor img =
        decode_image(reinterpret_cast<const uint8_t*>(png.data()), png.size(), "input.png", fuzz::kFuzzMaxPixels);
    if (img.dim() != 3 || img.size(2) != 3 || !img.is_contiguous() || img.scalar_type() != torch::kUInt8)
      fuzz::unexpected("an image that is not (H, W, 3) uint8", shape_str(img.sizes().vec()));
    fuzz::check_tensor(img);
    if (img.size(0) * img.size(1) <= 4096) fuzz::check_tensor(center_crop_arr(img, 8));
  });
  return 0;
}

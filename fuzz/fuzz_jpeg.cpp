// libFuzzer target: JPEG decoding (io/image.h: libjpeg with the pixel, scan and memory limits and
// truncation as an error) on arbitrary bytes, then the ADM centre crop on what decodes.
#include "common.h"
#include "image_builders.h"
#include "io/image.h"

namespace sdit::fuzz {

void write_seeds(const std::string& dir) {
  write_seed(dir, "ycc420.jpg", jpeg_bytes(JCS_RGB, 3, false, true, 19, 13));
  write_seed(dir, "ycc444_progressive.jpg", jpeg_bytes(JCS_RGB, 3, true, false, 16, 9));
  write_seed(dir, "gray.jpg", jpeg_bytes(JCS_GRAYSCALE, 1, false, false, 8, 8));
  write_seed(dir, "gray_progressive.jpg", jpeg_bytes(JCS_GRAYSCALE, 1, true, false, 11, 4));
  write_seed(dir, "cmyk.jpg", jpeg_bytes(JCS_CMYK, 4, false, false, 9, 9));
}

}  // namespace sdit::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdit;
  fuzz::run_reader([&] {
    const torch::Tensor img = decode_image(data, size, "input.jpg", fuzz::kFuzzMaxPixels);
    if (img.dim() != 3 || img.size(2) != 3 || !img.is_contiguous() || img.scalar_type() != torch::kUInt8)
      fuzz::unexpected("an image that is not (H, W, 3) uint8", shape_str(img.sizes().vec()));
    fuzz::check_tensor(img);
    if (img.size(0) * img.size(1) <= 4096) fuzz::check_tensor(center_crop_arr(img, 8));
  });
  return 0;
}

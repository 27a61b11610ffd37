// libFuzzer target: PNG decoding (io/image.h, libpng with the project's limits) on arbitrary
// bytes, then the ADM centre crop (io/image_resize.cpp) on what decodes.
#include "common.h"
#include "image_builders.h"
#include "io/image.h"

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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdit;
  fuzz::run_reader([&] {
    const torch::Tensor img = decode_image(data, size, "input.png", fuzz::kFuzzMaxPixels);
    if (img.dim() != 3 || img.size(2) != 3 || !img.is_contiguous() || img.scalar_type() != torch::kUInt8)
      fuzz::unexpected("an image that is not (H, W, 3) uint8", shape_str(img.sizes().vec()));
    fuzz::check_tensor(img);
    if (img.size(0) * img.size(1) <= 4096) fuzz::check_tensor(center_crop_arr(img, 8));
  });
  return 0;
}

#pragma once
// 8-bit RGB images: PNG (libpng) and JPEG (libjpeg) decoding with PIL's convert("RGB") semantics,
// PNG writing with text chunks, torchvision's save_image grid, and PIL's resampling as used by the
// ADM centre crop that DiT's training data goes through.
//
// Images are uint8 tensors (H, W, 3), contiguous, on the CPU.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

namespace sdit {

// By content (PNG/JPEG signature), not by extension; throws sdit::Error naming the file otherwise,
// also for truncated or corrupt files (as PIL reports "image file is truncated"). Images over
// max_pixels (0: max_image_pixels()) are refused after the header, before any pixel is decoded.
torch::Tensor read_image(const std::string& path, int64_t max_pixels = 0);
torch::Tensor read_png(const std::string& path, int64_t max_pixels = 0);
torch::Tensor read_jpeg(const std::string& path, int64_t max_pixels = 0);
// The same from bytes in memory; `name` stands for the file in errors.
torch::Tensor decode_image(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels = 0);
bool jpeg_supported();  // false when built without libjpeg
// The most pixels a decoded (or resized) image may have: $SPARSEDIT_MAX_IMAGE_PIXELS when set,
// else kDefaultMaxImagePixels (io/limits.h; PIL's own decompression-bomb limit).
int64_t max_image_pixels();

// text: keyword -> value, written as tEXt (iTXt when the value is not Latin-1-safe ASCII) before
// the image data. Keywords must be 1-79 printable ASCII characters.
void write_png(const std::string& path, const torch::Tensor& hwc_u8,
               const std::map<std::string, std::string>& text = {});
// Every tEXt/zTXt/iTXt chunk of a PNG.
std::map<std::string, std::string> read_png_text(const std::string& path);

// torchvision make_grid(nrow, padding=2, pad_value=0, normalize=True, value_range=(-1, 1)) followed
// by save_image's mul(255).add_(0.5).clamp_(0, 255) and uint8 cast. images: (N, C, H, W) float,
// C = 1 or 3. Returns (H', W', 3) uint8. A single image gets no padding, as in make_grid.
torch::Tensor make_image_grid(const torch::Tensor& images, int64_t nrow);
void save_image_grid(const torch::Tensor& images, int64_t nrow, const std::string& path,
                     const std::map<std::string, std::string>& text = {});

// PIL Image.resize(size, BOX / BICUBIC) on an 8-bit RGB image, bit-exact: separable antialiased
// filters in 22-bit fixed point, horizontal pass then vertical, rounding to 8 bits in between.
enum class Resample { Box, Bicubic };
torch::Tensor pil_resize(const torch::Tensor& hwc_u8, int64_t width, int64_t height, Resample filter);
// ADM/DiT center_crop_arr: BOX-halve while min side >= 2*size, BICUBIC so the short side is
// size (other side Python-rounded), then crop at ((H-size)//2, (W-size)//2).
torch::Tensor center_crop_arr(const torch::Tensor& hwc_u8, int64_t size);
// ToTensor + Normalize(0.5, 0.5): (H, W, 3) uint8 -> (3, H, W) float in [-1, 1].
torch::Tensor image_to_unit_range(const torch::Tensor& hwc_u8);

}  // namespace sdit

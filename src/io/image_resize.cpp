// PIL's Image.resize for 8-bit images (libImaging/Resample.c semantics), and the ADM centre crop.
// DiT's training images pass through PIL, so matching its integer arithmetic keeps encoded
// datasets identical to the reference pipeline's input pixels.
#include <algorithm>
#include <cmath>
#include <vector>

#include "io/image.h"
#include "util/error.h"

namespace sdit {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {
  const double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // (first input index, count) per output index
  std::vector<int32_t> k;   // ksize fixed-point weights per output index
};

// The filter is stretched by the downscale factor (antialiasing) and normalised per output pixel
// before being rounded to 22-bit fixed point, exactly as PIL's precompute_coeffs.
Coeffs precompute(int in_size, int out_size, Resample filter) {
  const double support0 = filter == Resample::Box ? 0.5 : 2.0;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = support0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(2 * out_size);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double arg = (x + xmin - center + 0.5) * ss;
      w[x] = filter == Resample::Box ? box(arg) : bicubic(arg);
      total += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = total != 0.0 ? w[x] / total : w[x];
      const double fixed = v * (1 << kPrecisionBits);
      c.k[size_t(xx) * c.ksize + x] = static_cast<int32_t>(v < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift: floor, as PIL's clip8 table
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// One pass along axis 1 (horizontal) or axis 0 (vertical) of an (H, W, 3) uint8 image.
torch::Tensor resample_axis(const torch::Tensor& in, int out_size, int axis, Resample filter) {
  const int h = static_cast<int>(in.size(0)), w = static_cast<int>(in.size(1));
  const int in_size = axis == 1 ? w : h;
  const Coeffs c = precompute(in_size, out_size, filter);
  const int oh = axis == 1 ? h : out_size, ow = axis == 1 ? out_size : w;
  auto out = torch::empty({oh, ow, 3}, torch::kUInt8);
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      const int o = axis == 1 ? x : y;
      const int first = c.bounds[2 * o], count = c.bounds[2 * o + 1];
      const int32_t* k = &c.k[size_t(o) * c.ksize];
      int32_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
      for (int i = 0; i < count; ++i) {
        const uint8_t* p = axis == 1 ? src + (int64_t(y) * w + first + i) * 3 : src + (int64_t(first + i) * w + x) * 3;
        acc[0] += p[0] * k[i];
        acc[1] += p[1] * k[i];
        acc[2] += p[2] * k[i];
      }
      uint8_t* q = dst + (int64_t(y) * ow + x) * 3;
      q[0] = clip8(acc[0]);
      q[1] = clip8(acc[1]);
      q[2] = clip8(acc[2]);
    }
  }
  return out;
}

void check_rgb8(const torch::Tensor& img, const char* what) {
  if (img.dim() != 3 || img.size(2) != 3 || img.scalar_type() != torch::kUInt8)
    fail(what, " expects a (H, W, 3) uint8 image, got ", shape_str(img.sizes().vec()));
  if (img.size(0) == 0 || img.size(1) == 0) fail(what, ": empty image");
}

// A filter table holds about 4 weights per input pixel of a row or column, so sides are bounded
// (and must fit the int indices); the result obeys the same pixel limit as a decoded image.
constexpr double kMaxSide = double(1 << 24);

void check_resize(double in_w, double in_h, double w, double h) {
  if (std::max({in_w, in_h, w, h}) > kMaxSide || w * h > double(max_image_pixels()))
    fail("resizing a ", int64_t(in_w), "x", int64_t(in_h), " image to ", w, "x", h,
         " exceeds the image limits (sides up to ", int64_t(kMaxSide), ", ", max_image_pixels(),
         " pixels; SPARSEDIT_MAX_IMAGE_PIXELS raises the latter)");
}

}  // namespace

torch::Tensor pil_resize(const torch::Tensor& img, int64_t width, int64_t height, Resample filter) {
  check_rgb8(img, "resize");
  if (width <= 0 || height <= 0) fail("resize to ", width, "x", height, ": sizes must be positive");
  check_resize(img.size(1), img.size(0), width, height);
  auto x = img.to(torch::kCPU).contiguous();
  // PIL skips a pass whose axis keeps its size, so no rounding happens along that axis.
  if (width != x.size(1)) x = resample_axis(x, static_cast<int>(width), 1, filter);
  if (height != x.size(0)) x = resample_axis(x, static_cast<int>(height), 0, filter);
  return x;
}

torch::Tensor center_crop_arr(const torch::Tensor& img, int64_t size) {
  check_rgb8(img, "center crop");
  if (size <= 0) fail("image size must be positive, got ", size);
  auto x = img.to(torch::kCPU).contiguous();
  while (std::min(x.size(0), x.size(1)) >= 2 * size)
    x = pil_resize(x, x.size(1) / 2, x.size(0) / 2, Resample::Box);
  // Python: scale = size / min(w, h); new side = round(side * scale), round-half-even on doubles.
  const double scale = static_cast<double>(size) / static_cast<double>(std::min(x.size(0), x.size(1)));
  check_resize(x.size(1), x.size(0), std::nearbyint(x.size(1) * scale), std::nearbyint(x.size(0) * scale));
  const auto nw = static_cast<int64_t>(std::nearbyint(static_cast<double>(x.size(1)) * scale));
  const auto nh = static_cast<int64_t>(std::nearbyint(static_cast<double>(x.size(0)) * scale));
  x = pil_resize(x, nw, nh, Resample::Bicubic);
  if (x.size(0) < size || x.size(1) < size) fail("center crop: resized image is smaller than ", size);
  const int64_t top = (x.size(0) - size) / 2, left = (x.size(1) - size) / 2;
  return x.narrow(0, top, size).narrow(1, left, size).contiguous();
}

torch::Tensor image_to_unit_range(const torch::Tensor& img) {
  check_rgb8(img, "image_to_unit_range");
  // ToTensor divides by 255 in float32, Normalize then subtracts 0.5 and divides by 0.5.
  return img.permute({2, 0, 1}).to(torch::kFloat32).div(255).sub(0.5).div(0.5).contiguous();
}

}  // namespace sdit

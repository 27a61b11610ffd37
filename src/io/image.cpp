#include "io/image.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#ifdef SPARSEDIT_HAVE_JPEG
#include <jpeglib.h>
#endif

#include "util/error.h"

namespace sdit {

namespace {

// libpng and libjpeg report errors by longjmp. Each setjmp below lives in a function whose
// locals are plain data, so the jump never skips a C++ destructor; C++ objects are created by
// the callers, and errors become sdit::Error only after the jump has landed.
struct PngCtx {
  std::string path;
  std::string error;
  FILE* file = nullptr;
  png_structp png = nullptr;
  png_infop info = nullptr;
  png_infop end = nullptr;
  bool writing = false;
  ~PngCtx() {
    if (png && writing) png_destroy_write_struct(&png, &info);
    else if (png) png_destroy_read_struct(&png, info ? &info : nullptr, end ? &end : nullptr);
    if (file) std::fclose(file);
  }
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngCtx*>(png_get_error_ptr(png));
  ctx->error = msg ? msg : "unknown libpng error";
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int channels = 0;
};

// Transforms reproduce PIL's open + convert("RGB"): palettes looked up, low-bit grey scaled to
// 8 bits, 16-bit samples cut to their high byte, grey replicated; any alpha is dropped by the caller.
bool png_read_header(PngCtx* ctx, PngHeader* h) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_init_io(ctx->png, ctx->file);
  png_set_sig_bytes(ctx->png, 8);
  png_read_info(ctx->png, ctx->info);
  const int color = png_get_color_type(ctx->png, ctx->info);
  const int depth = png_get_bit_depth(ctx->png, ctx->info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(ctx->png);
  if (depth == 16) png_set_strip_16(ctx->png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(ctx->png);
  png_set_interlace_handling(ctx->png);
  png_read_update_info(ctx->png, ctx->info);
  h->width = png_get_image_width(ctx->png, ctx->info);
  h->height = png_get_image_height(ctx->png, ctx->info);
  h->channels = png_get_channels(ctx->png, ctx->info);
  return true;
}

bool png_read_rows(PngCtx* ctx, png_bytep* rows) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_read_image(ctx->png, rows);
  png_read_end(ctx->png, ctx->end);
  return true;
}

void collect_text(png_structp png, png_infop info, std::map<std::string, std::string>* out) {
  png_textp text = nullptr;
  int n = 0;
  if (info && png_get_text(png, info, &text, &n) > 0) {
    for (int i = 0; i < n; ++i) {
      const size_t len = text[i].compression > 0 ? text[i].itxt_length : text[i].text_length;
      (*out)[text[i].key] = std::string(text[i].text ? text[i].text : "", len);
    }
  }
}

torch::Tensor read_png_impl(const std::string& path, std::map<std::string, std::string>* text) {
  PngCtx ctx;
  ctx.path = path;
  ctx.file = std::fopen(path.c_str(), "rb");
  if (!ctx.file) fail("cannot open image '", path, "': ", std::strerror(errno));
  unsigned char sig[8] = {0};
  if (std::fread(sig, 1, 8, ctx.file) != 8 || png_sig_cmp(sig, 0, 8) != 0)
    fail("'", path, "' is not a PNG file");
  ctx.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
  if (!ctx.png) fail("libpng could not start reading '", path, "'");
  ctx.info = png_create_info_struct(ctx.png);
  ctx.end = png_create_info_struct(ctx.png);
  if (!ctx.info || !ctx.end) fail("libpng could not start reading '", path, "'");
  PngHeader h;
  if (!png_read_header(&ctx, &h)) fail("corrupt PNG '", path, "': ", ctx.error);
  if (h.channels != 3 && h.channels != 4) fail("PNG '", path, "' has ", h.channels, " channels after conversion");
  if (uint64_t(h.width) * h.height > (uint64_t(1) << 31)) fail("PNG '", path, "' is too large");
  auto raw = torch::empty({int64_t(h.height), int64_t(h.width), h.channels}, torch::kUInt8);
  std::vector<png_bytep> rows(h.height);
  for (png_uint_32 y = 0; y < h.height; ++y) rows[y] = raw.data_ptr<uint8_t>() + int64_t(y) * h.width * h.channels;
  if (!png_read_rows(&ctx, rows.data())) fail("corrupt PNG '", path, "': ", ctx.error);
  if (text) {
    collect_text(ctx.png, ctx.info, text);
    collect_text(ctx.png, ctx.end, text);
  }
  // PIL's RGBA -> RGB drops alpha without compositing.
  return h.channels == 4 ? raw.narrow(2, 0, 3).contiguous() : raw;
}

bool png_write_all(PngCtx* ctx, png_uint_32 w, png_uint_32 h, png_bytep* rows, png_textp text, int n_text) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_init_io(ctx->png, ctx->file);
  png_set_IHDR(ctx->png, ctx->info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (n_text > 0) png_set_text(ctx->png, ctx->info, text, n_text);
  png_write_info(ctx->png, ctx->info);
  png_write_image(ctx->png, rows);
  png_write_end(ctx->png, ctx->info);
  return true;
}

bool plain_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80 || (c < 0x20 && c != '\n')) return false;
  return true;
}

#ifdef SPARSEDIT_HAVE_JPEG
struct JpegErr {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void jpeg_quiet(j_common_ptr, int) {}

struct JpegInfo {
  int width = 0, height = 0, components = 0;
  bool cmyk = false, adobe = false;
};

bool jpeg_start(jpeg_decompress_struct* cinfo, JpegErr* err, FILE* f, JpegInfo* info) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_stdio_src(cinfo, f);
  jpeg_read_header(cinfo, TRUE);
  info->cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  info->adobe = cinfo->saw_Adobe_marker;
  // PIL asks libjpeg for RGB (it converts YCbCr and replicates grey) and for raw CMYK otherwise.
  cinfo->out_color_space = info->cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(cinfo);
  info->width = cinfo->output_width;
  info->height = cinfo->output_height;
  info->components = cinfo->output_components;
  return true;
}

bool jpeg_rows(jpeg_decompress_struct* cinfo, JpegErr* err, uint8_t* out, int stride) {
  if (setjmp(err->jump)) return false;
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out + int64_t(cinfo->output_scanline) * stride;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

struct JpegCtx {
  jpeg_decompress_struct cinfo;
  JpegErr err;
  FILE* file = nullptr;
  bool created = false;
  ~JpegCtx() {
    if (created) jpeg_destroy_decompress(&cinfo);
    if (file) std::fclose(file);
  }
};

// PIL's CMYK -> RGB: each ink scaled by the remaining white (255 - K), rounded as MULDIV255.
uint8_t cmyk_channel(int ink, int k) {
  const int nk = 255 - k;
  int tmp = ink * nk + 128;
  const int v = nk - (((tmp >> 8) + tmp) >> 8);
  return static_cast<uint8_t>(std::clamp(v, 0, 255));
}
#endif

}  // namespace

bool jpeg_supported() {
#ifdef SPARSEDIT_HAVE_JPEG
  return true;
#else
  return false;
#endif
}

torch::Tensor read_png(const std::string& path) { return read_png_impl(path, nullptr); }

std::map<std::string, std::string> read_png_text(const std::string& path) {
  std::map<std::string, std::string> text;
  read_png_impl(path, &text);
  return text;
}

torch::Tensor read_jpeg(const std::string& path) {
#ifdef SPARSEDIT_HAVE_JPEG
  JpegCtx ctx;
  ctx.file = std::fopen(path.c_str(), "rb");
  if (!ctx.file) fail("cannot open image '", path, "': ", std::strerror(errno));
  ctx.cinfo.err = jpeg_std_error(&ctx.err.mgr);
  ctx.err.mgr.error_exit = jpeg_on_error;
  ctx.err.mgr.emit_message = jpeg_quiet;
  ctx.created = true;  // jpeg_create_decompress runs first thing in jpeg_start; destroy is safe after it
  JpegInfo info;
  if (!jpeg_start(&ctx.cinfo, &ctx.err, ctx.file, &info)) fail("cannot decode JPEG '", path, "': ", ctx.err.message);
  const int c = info.components;
  if (c != 3 && c != 4) fail("JPEG '", path, "' decodes to ", c, " components");
  auto raw = torch::empty({info.height, info.width, c}, torch::kUInt8);
  if (!jpeg_rows(&ctx.cinfo, &ctx.err, raw.data_ptr<uint8_t>(), info.width * c))
    fail("cannot decode JPEG '", path, "': ", ctx.err.message);
  if (c == 3) return raw;
  auto rgb = torch::empty({info.height, info.width, 3}, torch::kUInt8);
  const uint8_t* src = raw.data_ptr<uint8_t>();
  uint8_t* dst = rgb.data_ptr<uint8_t>();
  for (int64_t i = 0; i < int64_t(info.height) * info.width; ++i) {
    int px[4];
    for (int j = 0; j < 4; ++j) px[j] = info.adobe ? 255 - src[4 * i + j] : src[4 * i + j];  // Adobe stores CMYK inverted
    for (int j = 0; j < 3; ++j) dst[3 * i + j] = cmyk_channel(px[j], px[3]);
  }
  return rgb;
#else
  fail("cannot read JPEG '", path, "': sparsedit was built without libjpeg (install libjpeg62-turbo-dev and rebuild)");
#endif
}

torch::Tensor read_image(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot open image '", path, "': ", std::strerror(errno));
  unsigned char sig[8] = {0};
  const size_t n = std::fread(sig, 1, 8, f);
  std::fclose(f);
  if (n == 8 && png_sig_cmp(sig, 0, 8) == 0) return read_png(path);
  if (n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) return read_jpeg(path);
  fail("'", path, "' is neither a PNG nor a JPEG image");
}

void write_png(const std::string& path, const torch::Tensor& img, const std::map<std::string, std::string>& text) {
  if (img.dim() != 3 || img.size(2) != 3 || img.scalar_type() != torch::kUInt8)
    fail("write_png expects a (H, W, 3) uint8 image, got ", shape_str(img.sizes().vec()), " ", img.scalar_type());
  if (img.size(0) == 0 || img.size(1) == 0) fail("write_png: empty image");
  auto pixels = img.to(torch::kCPU).contiguous();
  std::vector<std::string> keys, values;
  std::vector<png_text> chunks;
  for (const auto& [k, v] : text) {
    if (k.empty() || k.size() > 79 || !plain_ascii(k) || k.find('\n') != std::string::npos || k.front() == ' ' ||
        k.back() == ' ')
      fail("PNG text keyword '", k, "' is invalid (1-79 printable ASCII characters)");
    keys.push_back(k);
    values.push_back(v);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    png_text t;
    std::memset(&t, 0, sizeof(t));
    t.key = const_cast<char*>(keys[i].c_str());
    t.text = const_cast<char*>(values[i].c_str());
    // tEXt is Latin-1; UTF-8 values (class names, prompts) need iTXt to survive.
    if (plain_ascii(values[i])) {
      t.compression = PNG_TEXT_COMPRESSION_NONE;
      t.text_length = values[i].size();
    } else {
      t.compression = PNG_ITXT_COMPRESSION_NONE;
      t.itxt_length = values[i].size();
    }
    chunks.push_back(t);
  }
  PngCtx ctx;
  ctx.writing = true;
  const std::string tmp = path + ".tmp";
  ctx.file = std::fopen(tmp.c_str(), "wb");
  if (!ctx.file) fail("cannot write '", path, "': ", std::strerror(errno));
  ctx.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
  if (ctx.png) ctx.info = png_create_info_struct(ctx.png);
  if (!ctx.png || !ctx.info) fail("libpng could not start writing '", path, "'");
  const auto h = img.size(0), w = img.size(1);
  std::vector<png_bytep> rows(h);
  for (int64_t y = 0; y < h; ++y) rows[y] = pixels.data_ptr<uint8_t>() + y * w * 3;
  const bool ok = png_write_all(&ctx, png_uint_32(w), png_uint_32(h), rows.data(), chunks.data(), int(chunks.size()));
  const bool closed = std::fclose(ctx.file) == 0;
  ctx.file = nullptr;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    fail("cannot write PNG '", path, "': ", ok ? std::string("write error") : ctx.error);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("cannot write '", path, "': ", std::strerror(errno));
  }
}

torch::Tensor make_image_grid(const torch::Tensor& images, int64_t nrow) {
  if (images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3))
    fail("image grid expects (N, 1 or 3, H, W) images, got ", shape_str(images.sizes().vec()));
  if (images.size(0) == 0) fail("image grid: no images");
  if (nrow <= 0) fail("--nrow must be positive, got ", nrow);
  auto x = images.detach().to(torch::kCPU, torch::kFloat32);
  if (x.size(1) == 1) x = torch::cat({x, x, x}, 1);
  // normalize=True, value_range=(-1, 1): clamp, subtract low, divide by (high - low), in float32.
  x = x.clamp(-1.0, 1.0).sub(-1.0).div(2.0);
  torch::Tensor grid;
  const int64_t n = x.size(0), pad = 2;
  if (n == 1) {
    grid = x[0];
  } else {
    const int64_t xmaps = std::min(nrow, n), ymaps = (n + xmaps - 1) / xmaps;
    const int64_t hh = x.size(2) + pad, ww = x.size(3) + pad;
    grid = torch::zeros({3, hh * ymaps + pad, ww * xmaps + pad}, torch::kFloat32);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t r = k / xmaps, c = k % xmaps;
      grid.narrow(1, r * hh + pad, hh - pad).narrow(2, c * ww + pad, ww - pad).copy_(x[k]);
    }
  }
  return grid.mul(255).add_(0.5).clamp_(0, 255).permute({1, 2, 0}).to(torch::kUInt8).contiguous();
}

void save_image_grid(const torch::Tensor& images, int64_t nrow, const std::string& path,
                     const std::map<std::string, std::string>& text) {
  write_png(path, make_image_grid(images, nrow), text);
}

}  // namespace sdit

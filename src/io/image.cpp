#include "io/image.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <climits>
#include <cstring>
#include <vector>

#ifdef SPARSEDIT_HAVE_JPEG
#include <jpeglib.h>
// after jpeglib.h, which it needs
#include <jerror.h>
#endif

#include "io/file_util.h"
#include "io/limits.h"
#include "util/error.h"

namespace sdit {

namespace {

void check_pixels(const char* format, const std::string& path, uint64_t width, uint64_t height, int64_t max_pixels) {
  if (width == 0 || height == 0) fail(format, " '", path, "' is empty (", width, "x", height, ")");
  if (width * height > static_cast<uint64_t>(max_pixels))
    fail(format, " '", path, "' is ", width, "x", height, " = ", width * height, " pixels, over the limit of ",
         max_pixels, " (set SPARSEDIT_MAX_IMAGE_PIXELS to allow larger images)");
}

// libpng and libjpeg report errors by longjmp. Each setjmp below lives in a function whose
// locals are plain data, so the jump never skips a C++ destructor; C++ objects are created by
// the callers, and errors become sdit::Error only after the jump has landed.
struct PngCtx {
  std::string path;
  std::string error;
  FILE* file = nullptr;       // writing
  const uint8_t* data = nullptr;  // reading: the whole file in memory
  size_t size = 0, pos = 0;
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

void png_read_memory(png_structp png, png_bytep out, size_t n) {
  auto* ctx = static_cast<PngCtx*>(png_get_io_ptr(png));
  if (n > ctx->size - ctx->pos) png_error(png, "image file is truncated");
  std::memcpy(out, ctx->data + ctx->pos, n);
  ctx->pos += n;
}

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int channels = 0;
};

// Transforms reproduce PIL's open + convert("RGB"): palettes looked up, low-bit grey scaled to
// 8 bits, 16-bit samples cut to their high byte, grey replicated; any alpha is dropped by the caller.
bool png_read_header(PngCtx* ctx, PngHeader* h, png_uint_32 max_side) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  // Explicit, whatever libpng was built with: sides, the largest ancillary chunk it allocates
  // (text, ICC, decompressed zTXt) and how many it keeps. The pixel count is checked by the caller.
  png_set_user_limits(ctx->png, max_side, max_side);
  png_set_chunk_malloc_max(ctx->png, kPngChunkMallocMax);
  png_set_chunk_cache_max(ctx->png, kPngChunkCacheMax);
  png_set_read_fn(ctx->png, ctx, png_read_memory);
  png_set_sig_bytes(ctx->png, 8);
  ctx->pos = 8;
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

// PNG sides beyond libpng's default user limit come only from hostile files.
constexpr png_uint_32 kPngMaxSide = 1000000;

// Walks the chunk list (length, type, data, CRC) up to IEND: a chunk that claims more bytes than
// the file holds is refused here, because libpng allocates a chunk's buffer from its claimed
// length before reading it (2 GB for a 50-byte file).
void check_png_chunks(const uint8_t* data, size_t size, const std::string& path) {
  size_t pos = 8;
  while (true) {
    if (size - pos < 12) fail("PNG '", path, "': image file is truncated (no IEND chunk)");
    const uint32_t len = uint32_t(data[pos]) << 24 | uint32_t(data[pos + 1]) << 16 | uint32_t(data[pos + 2]) << 8 | data[pos + 3];
    const std::string type(reinterpret_cast<const char*>(data + pos + 4), 4);
    if (len > size - pos - 12)
      fail("PNG '", path, "': image file is truncated (chunk '", type, "' claims ", len, " bytes, ",
           size - pos - 12, " remain)");
    if (type == "IEND") return;
    pos += 12 + size_t(len);
  }
}

torch::Tensor decode_png(const uint8_t* data, size_t size, const std::string& path, int64_t max_pixels,
                         std::map<std::string, std::string>* text) {
  PngCtx ctx;
  ctx.path = path;
  ctx.data = data;
  ctx.size = size;
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) fail("'", path, "' is not a PNG file");
  check_png_chunks(data, size, path);
  ctx.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
  if (!ctx.png) fail("libpng could not start reading '", path, "'");
  ctx.info = png_create_info_struct(ctx.png);
  ctx.end = png_create_info_struct(ctx.png);
  if (!ctx.info || !ctx.end) fail("libpng could not start reading '", path, "'");
  PngHeader h;
  const auto max_side = static_cast<png_uint_32>(std::min<int64_t>(kPngMaxSide, max_pixels));
  if (!png_read_header(&ctx, &h, max_side)) fail("corrupt PNG '", path, "': ", ctx.error);
  check_pixels("PNG", path, h.width, h.height, max_pixels);
  if (h.channels != 3 && h.channels != 4) fail("PNG '", path, "' has ", h.channels, " channels after conversion");
  auto raw = torch::empty({int64_t(h.height), int64_t(h.width), h.channels}, torch::kUInt8);
  std::vector<png_bytep> rows(h.height);
  for (png_uint_32 y = 0; y < h.height; ++y) rows[y] = raw.data_ptr<uint8_t>() + int64_t(y) * h.width * h.channels;
  if (!png_read_rows(&ctx, rows.data())) fail("corrupt PNG '", path, "': ", ctx.error);
  if (text) {
    collect_text(ctx.png, ctx.info, text);
    collect_text(ctx.png, ctx.end, text);
  }
  if (h.channels == 3) return raw;
  // PIL's RGBA -> RGB drops alpha without compositing. Compacted in place (each pixel moves
  // towards the front), so an RGBA image never needs a second buffer.
  uint8_t* p = raw.data_ptr<uint8_t>();
  const int64_t n = int64_t(h.height) * h.width;
  for (int64_t k = 0; k < n; ++k)
    for (int c = 0; c < 3; ++c) p[3 * k + c] = p[4 * k + c];
  return raw.view({-1}).narrow(0, 0, 3 * n).view({int64_t(h.height), int64_t(h.width), 3});
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
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
};

[[noreturn]] void jpeg_jump(j_common_ptr cinfo, const char* prefix) {
  auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  std::snprintf(err->message, sizeof err->message, "%s%s", prefix, text);
  std::longjmp(err->jump, 1);
}

void jpeg_on_error(j_common_ptr cinfo) { jpeg_jump(cinfo, ""); }

// libjpeg only warns when the data ends early (it pads the image with grey); PIL reports such a
// file as truncated, and so do we. Other warnings (e.g. extraneous bytes before a marker) are
// ignored, as PIL ignores them.
void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_jump(cinfo, "image file is truncated: ");
}

void jpeg_on_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kJpegMaxScans) {
    auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
    std::snprintf(err->message, sizeof err->message, "more than %d progressive scans", kJpegMaxScans);
    std::longjmp(err->jump, 1);
  }
}

struct JpegInfo {
  uint64_t width = 0, height = 0;  // as the header declares them
  int components = 0;
  bool cmyk = false, adobe = false;
};

bool jpeg_header(jpeg_decompress_struct* cinfo, JpegErr* err, const uint8_t* data, size_t size, JpegInfo* info) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  cinfo->progress = &err->progress;
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
  info->width = cinfo->image_width;
  info->height = cinfo->image_height;
  info->components = cinfo->num_components;
  info->cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  info->adobe = cinfo->saw_Adobe_marker;
  return true;
}

// Runs after the caller has checked the declared size: progressive images are buffered whole here.
bool jpeg_start(jpeg_decompress_struct* cinfo, JpegErr* err, const JpegInfo& info, long max_memory) {
  if (setjmp(err->jump)) return false;
  cinfo->mem->max_memory_to_use = max_memory;
  // PIL asks libjpeg for RGB (it converts YCbCr and replicates grey) and for raw CMYK otherwise.
  cinfo->out_color_space = info.cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(cinfo);
  return true;
}

// PIL's CMYK -> RGB: each ink scaled by the remaining white (255 - K), rounded as MULDIV255.
uint8_t cmyk_channel(int ink, int k) {
  const int nk = 255 - k;
  int tmp = ink * nk + 128;
  const int v = nk - (((tmp >> 8) + tmp) >> 8);
  return static_cast<uint8_t>(std::clamp(v, 0, 255));
}

// Decodes row by row into out (H, W, 3); CMYK rows pass through `cmyk_row` (W * 4 bytes) first.
bool jpeg_rows(jpeg_decompress_struct* cinfo, JpegErr* err, uint8_t* out, uint8_t* cmyk_row, bool adobe) {
  if (setjmp(err->jump)) return false;
  const int64_t w = cinfo->output_width;
  while (cinfo->output_scanline < cinfo->output_height) {
    uint8_t* dst = out + int64_t(cinfo->output_scanline) * w * 3;
    JSAMPROW row = cmyk_row ? cmyk_row : dst;
    jpeg_read_scanlines(cinfo, &row, 1);
    if (!cmyk_row) continue;
    for (int64_t x = 0; x < w; ++x) {
      int px[4];
      for (int j = 0; j < 4; ++j) px[j] = adobe ? 255 - cmyk_row[4 * x + j] : cmyk_row[4 * x + j];  // Adobe stores CMYK inverted
      for (int j = 0; j < 3; ++j) dst[3 * x + j] = cmyk_channel(px[j], px[3]);
    }
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

struct JpegCtx {
  jpeg_decompress_struct cinfo;
  JpegErr err;
  bool created = false;
  ~JpegCtx() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

torch::Tensor decode_jpeg(const uint8_t* data, size_t size, const std::string& path, int64_t max_pixels) {
  JpegCtx ctx;
  ctx.cinfo.err = jpeg_std_error(&ctx.err.mgr);
  ctx.err.mgr.error_exit = jpeg_on_error;
  ctx.err.mgr.emit_message = jpeg_on_message;
  ctx.err.progress.progress_monitor = jpeg_on_progress;
  ctx.created = true;  // jpeg_create_decompress runs first thing in jpeg_header; destroy is safe after it
  JpegInfo info;
  if (!jpeg_header(&ctx.cinfo, &ctx.err, data, size, &info)) fail("cannot decode JPEG '", path, "': ", ctx.err.message);
  check_pixels("JPEG", path, info.width, info.height, max_pixels);
  if (info.components != 1 && info.components != 3 && info.components != 4)
    fail("JPEG '", path, "' has ", info.components, " components (1, 3 or 4 are images)");
  // libjpeg buffers a progressive image's coefficients whole: 2 bytes per pixel and component.
  const long max_memory = max_pixels < (LONG_MAX >> 4) ? static_cast<long>(8 * max_pixels + (64 << 20)) : LONG_MAX;
  if (!jpeg_start(&ctx.cinfo, &ctx.err, info, max_memory)) fail("cannot decode JPEG '", path, "': ", ctx.err.message);
  const int c = ctx.cinfo.output_components;
  if (c != (info.cmyk ? 4 : 3)) fail("JPEG '", path, "' decodes to ", c, " components");
  const int64_t h = ctx.cinfo.output_height, w = ctx.cinfo.output_width;
  auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
  std::vector<uint8_t> cmyk_row(info.cmyk ? size_t(w) * 4 : 0);
  if (!jpeg_rows(&ctx.cinfo, &ctx.err, rgb.data_ptr<uint8_t>(), info.cmyk ? cmyk_row.data() : nullptr, info.adobe))
    fail("cannot decode JPEG '", path, "': ", ctx.err.message);
  return rgb;
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

int64_t max_image_pixels() {
  const char* env = std::getenv("SPARSEDIT_MAX_IMAGE_PIXELS");
  if (!env || !*env) return kDefaultMaxImagePixels;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(env, &end, 10);
  if (errno != 0 || *end != '\0' || v <= 0)
    fail("SPARSEDIT_MAX_IMAGE_PIXELS must be a positive integer (pixels), got '", env, "'");
  return v;
}

namespace {

int64_t pixel_limit(int64_t max_pixels) { return max_pixels > 0 ? max_pixels : max_image_pixels(); }

bool is_png(const uint8_t* data, size_t size) { return size >= 8 && png_sig_cmp(data, 0, 8) == 0; }
bool is_jpeg(const uint8_t* data, size_t size) { return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF; }

torch::Tensor decode_jpeg_or_fail(const uint8_t* data, size_t size, const std::string& path, int64_t max_pixels) {
#ifdef SPARSEDIT_HAVE_JPEG
  return decode_jpeg(data, size, path, max_pixels);
#else
  fail("cannot read JPEG '", path, "': sparsedit was built without libjpeg (install libjpeg62-turbo-dev and rebuild)");
#endif
}

}  // namespace

torch::Tensor read_png(const std::string& path, int64_t max_pixels) {
  auto f = MappedFile::open(path);
  return decode_png(f->data(), f->size(), path, pixel_limit(max_pixels), nullptr);
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  std::map<std::string, std::string> text;
  auto f = MappedFile::open(path);
  decode_png(f->data(), f->size(), path, max_image_pixels(), &text);
  return text;
}

torch::Tensor read_jpeg(const std::string& path, int64_t max_pixels) {
  auto f = MappedFile::open(path);
  if (!is_jpeg(f->data(), f->size())) fail("'", path, "' is not a JPEG file");
  return decode_jpeg_or_fail(f->data(), f->size(), path, pixel_limit(max_pixels));
}

torch::Tensor decode_image(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  if (is_png(data, size)) return decode_png(data, size, name, pixel_limit(max_pixels), nullptr);
  if (is_jpeg(data, size)) return decode_jpeg_or_fail(data, size, name, pixel_limit(max_pixels));
  fail("'", name, "' is neither a PNG nor a JPEG image");
}

torch::Tensor read_image(const std::string& path, int64_t max_pixels) {
  auto f = MappedFile::open(path);
  return decode_image(f->data(), f->size(), path, max_pixels);
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

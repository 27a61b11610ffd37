#pragma once
// Small PNG and JPEG files built in memory with libpng and libjpeg, shared by the tests and the
// fuzz targets' seeds: every colour type and depth, interlacing, progressive JPEG, CMYK.
#include <png.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#ifdef SPARSEDIT_HAVE_JPEG
#include <jpeglib.h>
#endif

namespace sdit {
namespace image_builders_detail {

inline void append(png_structp png, png_bytep data, size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}

}  // namespace image_builders_detail

// A w x h gradient in any colour type and depth, optionally interlaced, with tRNS and text chunks.
inline std::string png_bytes(int color, int depth, bool interlace, int w, int h, bool extras) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, image_builders_detail::append, nullptr);
  png_set_IHDR(png, info, w, h, depth, color, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (color == PNG_COLOR_TYPE_PALETTE) {
    png_color palette[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    png_set_PLTE(png, info, palette, 4);
    png_byte alpha[2] = {0, 128};
    if (extras) png_set_tRNS(png, info, alpha, 2, nullptr);
  }
  if (extras) {
    png_text text[2] = {};
    text[0].compression = PNG_TEXT_COMPRESSION_zTXt;
    text[0].key = const_cast<char*>("parameters");
    text[0].text = const_cast<char*>("steps 250, cfg 4.0, seed 0");
    text[1].compression = PNG_ITXT_COMPRESSION_NONE;
    text[1].key = const_cast<char*>("caption");
    text[1].text = const_cast<char*>("un chat \xc3\xa0 la fen\xc3\xaatre");
    png_set_text(png, info, text, 2);
  }
  png_write_info(png, info);
  const int channels = png_get_channels(png, info);
  const size_t row_bytes = (size_t(w) * channels * depth + 7) / 8;
  std::vector<png_byte> row(row_bytes);
  const int passes = interlace ? png_set_interlace_handling(png) : 1;
  for (int pass = 0; pass < passes; ++pass)
    for (int y = 0; y < h; ++y) {
      for (size_t i = 0; i < row_bytes; ++i) row[i] = static_cast<png_byte>(i * 37 + y * 11);
      if (color == PNG_COLOR_TYPE_PALETTE && depth == 8)
        for (auto& b : row) b &= 3;
      png_write_row(png, row.data());
    }
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out;
}


#ifdef SPARSEDIT_HAVE_JPEG
// A w x h gradient: grey, YCbCr (4:2:0 or 4:4:4), or Adobe CMYK; baseline or progressive.
inline std::string jpeg_bytes(J_COLOR_SPACE space, int components, bool progressive, bool subsample, int w, int h) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  jpeg_mem_dest(&c, &buf, &len);
  c.image_width = w;
  c.image_height = h;
  c.input_components = components;
  c.in_color_space = space;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 90, TRUE);
  if (!subsample)
    for (int i = 0; i < c.num_components; ++i) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  if (progressive) jpeg_simple_progression(&c);
  c.restart_interval = progressive ? 0 : 2;
  jpeg_start_compress(&c, TRUE);
  std::vector<JSAMPLE> row(size_t(w) * components);
  while (c.next_scanline < c.image_height) {
    for (size_t i = 0; i < row.size(); ++i) row[i] = static_cast<JSAMPLE>(i * 13 + c.next_scanline * 7);
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::string out(reinterpret_cast<const char*>(buf), len);
  std::free(buf);
  return out;
}

#endif

}  // namespace sdit

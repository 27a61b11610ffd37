// Animated GIF through giflib (io/video.h). Writing quantises each frame to its own 256-colour
// palette; reading walks the records itself (rather than DGifSlurp) so that every image is bounded
// before it is decoded, and composes the frames as browsers do: transparency, the three disposal
// modes, interlaced images, images clipped to the logical screen. Built only with SPARSEDIT_HAVE_GIF.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "io/video.h"
#include "util/error.h"

#ifdef SPARSEDIT_HAVE_GIF
#include <gif_lib.h>
#endif

namespace sdit {

#ifndef SPARSEDIT_HAVE_GIF

bool gif_available() { return false; }
void write_gif(const std::string&, const torch::Tensor&, const VideoWriteOptions&) {
  fail("GIF needs giflib, which this build does not have");
}
Video read_gif_memory(const uint8_t*, size_t, int64_t) { fail("decoding GIF needs giflib, which this build does not have"); }

#else

namespace {

int append_bytes(GifFileType* gif, const GifByteType* buf, int n) {
  auto* out = static_cast<std::vector<uint8_t>*>(gif->UserData);
  out->insert(out->end(), buf, buf + n);
  return n;
}

struct MemoryInput {
  const uint8_t* data;
  size_t size, pos = 0;
};

int read_bytes(GifFileType* gif, GifByteType* buf, int n) {
  auto* in = static_cast<MemoryInput*>(gif->UserData);
  const size_t take = std::min(static_cast<size_t>(std::max(n, 0)), in->size - in->pos);
  std::memcpy(buf, in->data + in->pos, take);
  in->pos += take;
  return static_cast<int>(take);
}

void put(int status, GifFileType* gif, const char* what) {
  if (status == GIF_ERROR) fail("GIF: ", what, ": ", GifErrorString(gif->Error));
}

// Netscape looping extension: repeat forever.
void put_loop_forever(GifFileType* gif) {
  static const GifByteType app[] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
  static const GifByteType loop[] = {1, 0, 0};
  put(EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE), gif, "loop extension");
  put(EGifPutExtensionBlock(gif, sizeof app, app), gif, "loop extension");
  put(EGifPutExtensionBlock(gif, sizeof loop, loop), gif, "loop extension");
  put(EGifPutExtensionTrailer(gif), gif, "loop extension");
}

void put_frame(GifFileType* gif, const torch::Tensor& rgb, int delay_cs) {
  const int h = static_cast<int>(rgb.size(0)), w = static_cast<int>(rgb.size(1));
  auto planes = rgb.permute({2, 0, 1}).contiguous();  // GifQuantizeBuffer takes separate R, G, B planes
  std::vector<GifByteType> index(static_cast<size_t>(w) * h);
  GifColorType palette[256] = {};
  int colors = 256;
  auto* p = planes.data_ptr<uint8_t>();
  const size_t n = static_cast<size_t>(w) * h;
  if (GifQuantizeBuffer(w, h, &colors, p, p + n, p + 2 * n, index.data(), palette) == GIF_ERROR)
    fail("GIF: cannot quantise a frame to 256 colours");
  ColorMapObject* map = GifMakeMapObject(256, palette);
  if (!map) fail("GIF: out of memory");
  GraphicsControlBlock gcb{DISPOSE_DO_NOT, false, delay_cs, NO_TRANSPARENT_COLOR};
  GifByteType ext[4];
  EGifGCBToExtension(&gcb, ext);
  int status = EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, sizeof ext, ext);
  if (status != GIF_ERROR) status = EGifPutImageDesc(gif, 0, 0, w, h, false, map);
  for (int y = 0; y < h && status != GIF_ERROR; ++y) status = EGifPutLine(gif, index.data() + static_cast<size_t>(y) * w, w);
  GifFreeMapObject(map);
  put(status, gif, "writing a frame");
}

// The state of the logical screen while frames are composed onto it.
struct Composer {
  GifFileType* gif;
  torch::Tensor canvas;  // (H, W, 3)
  int64_t max_bytes;     // of decoded frames, all together
  GraphicsControlBlock gcb{DISPOSAL_UNSPECIFIED, false, 0, NO_TRANSPARENT_COLOR};
  std::vector<torch::Tensor> frames;
  int64_t delay_total = 0;

  void image() {
    put(DGifGetImageDesc(gif), gif, "image descriptor");
    const GifImageDesc& d = gif->Image;
    if (d.Width < 1 || d.Height < 1 || d.Width > kMaxVideoSide || d.Height > kMaxVideoSide)
      fail("GIF: image of ", d.Width, "x", d.Height, " is outside 1..", kMaxVideoSide);
    const ColorMapObject* map = d.ColorMap ? d.ColorMap : gif->SColorMap;
    if (!map) fail("GIF: an image without a colour map");
    check_video_budget(canvas.size(1), canvas.size(0), static_cast<int64_t>(frames.size()), "GIF", max_bytes);
    const torch::Tensor before = gcb.DisposalMode == DISPOSE_PREVIOUS ? canvas.clone() : torch::Tensor();
    std::vector<GifPixelType> line(static_cast<size_t>(d.Width));
    // Interlaced images arrive in four passes: rows 0, 8, ..; 4, 12, ..; 2, 6, ..; 1, 3, ...
    static const int start[] = {0, 4, 2, 1}, step[] = {8, 8, 4, 2};
    std::vector<int> rows;
    for (int pass = 0; pass < (d.Interlace ? 4 : 1); ++pass)
      for (int y = d.Interlace ? start[pass] : 0; y < d.Height; y += d.Interlace ? step[pass] : 1) rows.push_back(y);
    const int64_t H = canvas.size(0), W = canvas.size(1);
    auto c = canvas.accessor<uint8_t, 3>();
    for (const int y : rows) {
      put(DGifGetLine(gif, line.data(), d.Width), gif, "image data");
      const int64_t cy = static_cast<int64_t>(d.Top) + y;
      if (cy >= H) continue;  // outside the logical screen: clipped
      for (int x = 0; x < d.Width; ++x) {
        const int64_t cx = static_cast<int64_t>(d.Left) + x;
        const int k = line[x];
        if (cx >= W || k == gcb.TransparentColor || k >= map->ColorCount) continue;
        c[cy][cx][0] = map->Colors[k].Red;
        c[cy][cx][1] = map->Colors[k].Green;
        c[cy][cx][2] = map->Colors[k].Blue;
      }
    }
    frames.push_back(canvas.clone());
    delay_total += gcb.DelayTime;
    if (gcb.DisposalMode == DISPOSE_BACKGROUND) {  // back to the (transparent, here black) background
      const int64_t y0 = std::min<int64_t>(d.Top, H), x0 = std::min<int64_t>(d.Left, W);
      canvas.narrow(0, y0, std::min<int64_t>(d.Height, H - y0)).narrow(1, x0, std::min<int64_t>(d.Width, W - x0)).zero_();
    } else if (gcb.DisposalMode == DISPOSE_PREVIOUS) {
      canvas = before;
    }
    gcb = GraphicsControlBlock{DISPOSAL_UNSPECIFIED, false, 0, NO_TRANSPARENT_COLOR};
  }

  void extension() {
    int code = 0;
    GifByteType* ext = nullptr;
    put(DGifGetExtension(gif, &code, &ext), gif, "extension");
    if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4) DGifExtensionToGCB(4, ext + 1, &gcb);
    while (ext) put(DGifGetExtensionNext(gif, &ext), gif, "extension");
  }
};

}  // namespace

bool gif_available() { return true; }

void write_gif(const std::string& path, const torch::Tensor& frames, const VideoWriteOptions& opt) {
  if (frames.size(1) > 65535 || frames.size(2) > 65535) fail("GIF frames are at most 65535 pixels on a side");
  std::vector<uint8_t> bytes;
  int err = 0;
  GifFileType* gif = EGifOpen(&bytes, append_bytes, &err);
  if (!gif) fail("GIF: ", GifErrorString(err));
  try {
    EGifSetGifVersion(gif, true);
    put(EGifPutScreenDesc(gif, static_cast<int>(frames.size(2)), static_cast<int>(frames.size(1)), 8, 0, nullptr), gif,
        "screen descriptor");
    put_loop_forever(gif);
    // Delays are whole hundredths of a second: round the frame end times, not each frame.
    auto end_cs = [&](int64_t i) { return static_cast<int>(std::lround(static_cast<double>(i) * 100.0 / opt.fps)); };
    for (int64_t i = 0; i < frames.size(0); ++i) put_frame(gif, frames[i], end_cs(i + 1) - end_cs(i));
  } catch (...) {
    EGifCloseFile(gif, &err);
    throw;
  }
  if (EGifCloseFile(gif, &err) == GIF_ERROR) fail("GIF: ", GifErrorString(err));
  write_bytes_atomically(path, bytes.data(), bytes.size());
}

Video read_gif_memory(const uint8_t* data, size_t size, int64_t max_bytes) {
  MemoryInput in{data, size};
  int err = 0;
  GifFileType* gif = DGifOpen(&in, read_bytes, &err);
  if (!gif) fail("not a valid GIF file: ", GifErrorString(err));
  std::unique_ptr<GifFileType, void (*)(GifFileType*)> owner(gif, [](GifFileType* g) {
    int e = 0;
    DGifCloseFile(g, &e);
  });
  check_video_budget(gif->SWidth, gif->SHeight, 0, "GIF", max_bytes);
  Composer comp{gif, torch::zeros({gif->SHeight, gif->SWidth, 3}, torch::kUInt8), max_bytes};
  for (bool done = false; !done;) {
    GifRecordType type;
    put(DGifGetRecordType(gif, &type), gif, "record");
    switch (type) {
      case IMAGE_DESC_RECORD_TYPE: comp.image(); break;
      case EXTENSION_RECORD_TYPE: comp.extension(); break;
      case TERMINATE_RECORD_TYPE: done = true; break;
      default: fail("GIF: unexpected record type ", static_cast<int>(type));
    }
  }
  if (comp.frames.empty()) fail("GIF file without images");
  Video v;
  v.frames = torch::stack(comp.frames);
  v.fps = comp.delay_total > 0 ? 100.0 * static_cast<double>(comp.frames.size()) / static_cast<double>(comp.delay_total) : 0.0;
  return v;
}

#endif

}  // namespace sdit

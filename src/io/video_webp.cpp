// Animated WebP through libwebp (io/video.h): WebPAnimEncoder to write, WebPAnimDecoder (which also
// takes still images) to read. Built only with SPARSEDIT_HAVE_WEBP.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "io/video.h"
#include "util/error.h"

#ifdef SPARSEDIT_HAVE_WEBP
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>
#endif

namespace sdit {

#ifndef SPARSEDIT_HAVE_WEBP

bool webp_available() { return false; }
void write_webp_animation(const std::string&, const torch::Tensor&, const VideoWriteOptions&) {
  fail("WebP needs libwebp, which this build does not have");
}
Video read_webp_memory(const uint8_t*, size_t, int64_t) { fail("decoding WebP needs libwebp, which this build does not have"); }

#else

bool webp_available() { return true; }

void write_webp_animation(const std::string& path, const torch::Tensor& frames, const VideoWriteOptions& opt) {
  const int w = static_cast<int>(frames.size(2)), h = static_cast<int>(frames.size(1));
  WebPAnimEncoderOptions eo;
  WebPConfig config;
  if (!WebPAnimEncoderOptionsInit(&eo) || !WebPConfigInit(&config)) fail("libwebp version mismatch");
  eo.anim_params.loop_count = 0;  // forever
  config.lossless = opt.lossless ? 1 : 0;
  config.quality = static_cast<float>(std::clamp(opt.quality, 0, 100));
  if (!WebPValidateConfig(&config)) fail("invalid WebP settings");
  std::unique_ptr<WebPAnimEncoder, void (*)(WebPAnimEncoder*)> enc(WebPAnimEncoderNew(w, h, &eo), WebPAnimEncoderDelete);
  if (!enc) fail("cannot start a ", w, "x", h, " WebP animation");
  const double frame_ms = 1000.0 / opt.fps;
  for (int64_t i = 0; i <= frames.size(0); ++i) {
    const int timestamp = static_cast<int>(std::lround(static_cast<double>(i) * frame_ms));
    if (i == frames.size(0)) {  // the end time of the last frame
      if (!WebPAnimEncoderAdd(enc.get(), nullptr, timestamp, nullptr)) fail("WebP: ", WebPAnimEncoderGetError(enc.get()));
      break;
    }
    WebPPicture pic;
    if (!WebPPictureInit(&pic)) fail("libwebp version mismatch");
    pic.width = w;
    pic.height = h;
    pic.use_argb = 1;
    const bool ok = WebPPictureImportRGB(&pic, frames[i].data_ptr<uint8_t>(), 3 * w) &&
                    WebPAnimEncoderAdd(enc.get(), &pic, timestamp, &config);
    WebPPictureFree(&pic);
    if (!ok) fail("WebP frame ", i, ": ", WebPAnimEncoderGetError(enc.get()));
  }
  WebPData data;
  WebPDataInit(&data);
  if (!WebPAnimEncoderAssemble(enc.get(), &data)) fail("WebP: ", WebPAnimEncoderGetError(enc.get()));
  try {
    write_bytes_atomically(path, data.bytes, data.size);
  } catch (...) {
    WebPDataClear(&data);
    throw;
  }
  WebPDataClear(&data);
}

namespace {

// WebPAnimDecoderNew allocates its two RGBA canvases (8 bytes a pixel) as soon as it opens a file,
// sized by the header alone, which may declare up to 2^32 pixels in a few bytes. So the canvas is
// read first with the demuxer, which parses chunk headers and allocates nothing per pixel, and
// checked against the side limit and the budget (both canvases, and the first RGB frame).
void check_webp_canvas(const WebPData& data, int64_t max_bytes) {
  std::unique_ptr<WebPDemuxer, void (*)(WebPDemuxer*)> demux(WebPDemux(&data), WebPDemuxDelete);
  if (!demux) fail("not a valid WebP file");
  const int64_t w = WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_WIDTH);
  const int64_t h = WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_HEIGHT);
  check_video_budget(w, h, 0, "WebP", max_bytes);
  if (8 * w * h > max_bytes)
    fail("WebP: decoding a ", w, "x", h, " canvas needs ", (8 * w * h) >> 20, " MiB, more than the ", max_bytes >> 20,
         " MiB budget");
}

}  // namespace

Video read_webp_memory(const uint8_t* bytes, size_t size, int64_t max_bytes) {
  WebPAnimDecoderOptions o;
  if (!WebPAnimDecoderOptionsInit(&o)) fail("libwebp version mismatch");
  o.color_mode = MODE_RGBA;
  o.use_threads = 0;
  WebPData data{bytes, size};
  check_webp_canvas(data, max_bytes);
  std::unique_ptr<WebPAnimDecoder, void (*)(WebPAnimDecoder*)> dec(WebPAnimDecoderNew(&data, &o), WebPAnimDecoderDelete);
  if (!dec) fail("not a valid WebP file");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec.get(), &info)) fail("not a valid WebP file");
  const int64_t w = info.canvas_width, h = info.canvas_height;
  std::vector<torch::Tensor> out;
  int last_ms = 0;
  while (WebPAnimDecoderHasMoreFrames(dec.get())) {
    check_video_budget(w, h, static_cast<int64_t>(out.size()), "WebP", max_bytes);
    uint8_t* rgba = nullptr;
    if (!WebPAnimDecoderGetNext(dec.get(), &rgba, &last_ms)) fail("WebP frame ", out.size(), " is damaged");
    // The canvas is RGBA; our frames are opaque RGB (a transparent pixel keeps its colour values).
    auto canvas = torch::from_blob(rgba, {h, w, 4}, torch::kUInt8);
    out.push_back(canvas.narrow(2, 0, 3).clone());
  }
  if (out.empty()) fail("WebP file without frames");
  Video v;
  v.frames = torch::stack(out);
  // Timestamps are frame end times in ms; a still image has none.
  v.fps = out.size() > 1 && last_ms > 0 ? 1000.0 * static_cast<double>(out.size()) / last_ms : 0.0;
  return v;
}

#endif

}  // namespace sdit

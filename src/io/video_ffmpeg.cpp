// MP4 writing and container decoding through Debian's FFmpeg libraries (io/video.h). Built only when
// CMake found libavformat, libavcodec, libswscale and libavutil (SPARSEDIT_HAVE_FFMPEG); otherwise
// every entry point is a clear error.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include <unistd.h>

#include "io/video.h"
#include "util/error.h"

#ifdef SPARSEDIT_HAVE_FFMPEG
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}
#endif

namespace sdit {

#ifndef SPARSEDIT_HAVE_FFMPEG

bool ffmpeg_available() { return false; }
std::string mp4_encoder_description() { return "none (built without FFmpeg)"; }
void write_mp4(const std::string&, const torch::Tensor&, const VideoWriteOptions&) {
  fail("MP4 needs FFmpeg, which this build does not have");
}
Video read_ffmpeg_file(const std::string&) { fail("decoding this video needs FFmpeg, which this build does not have"); }
Video read_ffmpeg_memory(const uint8_t*, size_t, int64_t) { fail("decoding this video needs FFmpeg, which this build does not have"); }

#else

namespace {

// Containers we read: FFmpeg's demuxers that cannot open further files or URLs on a file's say-so
// (no playlists, no concat lists, no image sequences).
constexpr const char* kFormats = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpeg,mpegts,ogg,h264,hevc,m4v,ivf,asf,nut";

std::string av_error(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

void check(int ret, const char* what) {
  if (ret < 0) fail(what, ": ", av_error(ret));
}

// FFmpeg's own log would print a second, less specific copy of every error we report.
void quiet_ffmpeg() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

const AVCodec* mp4_encoder() {
  if (const AVCodec* c = avcodec_find_encoder_by_name("libx264")) return c;
  if (const AVCodec* c = avcodec_find_encoder(AV_CODEC_ID_H264)) return c;
  return avcodec_find_encoder(AV_CODEC_ID_MPEG4);
}

// Owns every FFmpeg object of one encode or decode.
struct Av {
  AVFormatContext* fmt = nullptr;
  bool output = false, opened_input = false;
  AVIOContext* custom_io = nullptr;
  AVCodecContext* codec = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  SwsContext* sws = nullptr;
  ~Av() {
    sws_freeContext(sws);
    av_packet_free(&packet);
    av_frame_free(&frame);
    avcodec_free_context(&codec);
    if (output) {
      if (fmt && fmt->pb) avio_closep(&fmt->pb);
      avformat_free_context(fmt);
    } else if (opened_input) {
      avformat_close_input(&fmt);
    } else {
      avformat_free_context(fmt);
    }
    if (custom_io) {
      av_freep(&custom_io->buffer);
      avio_context_free(&custom_io);
    }
  }
};

// BT.601 limited range, what players assume for untagged standard-definition video; tagged so.
void set_colorspace(SwsContext* sws, int colorspace, bool full_range_yuv, bool to_yuv) {
  const int* coeffs = sws_getCoefficients(colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_DEFAULT);
  const int yuv_range = full_range_yuv ? 1 : 0;
  if (to_yuv) sws_setColorspaceDetails(sws, coeffs, 1, coeffs, yuv_range, 0, 1 << 16, 1 << 16);
  else sws_setColorspaceDetails(sws, coeffs, yuv_range, coeffs, 1, 0, 1 << 16, 1 << 16);
}

void open_encoder(Av& av, const std::string& tmp, int64_t w, int64_t h, const VideoWriteOptions& opt) {
  check(avformat_alloc_output_context2(&av.fmt, nullptr, "mp4", tmp.c_str()), "MP4 muxer");
  av.output = true;
  const AVCodec* enc = mp4_encoder();
  if (!enc) fail("this FFmpeg has neither an H.264 nor an MPEG-4 encoder");
  AVStream* st = avformat_new_stream(av.fmt, nullptr);
  av.codec = avcodec_alloc_context3(enc);
  if (!st || !av.codec) fail("out of memory setting up the MP4 encoder");
  const AVRational rate = av_d2q(opt.fps, 100000);
  av.codec->width = static_cast<int>(w);
  av.codec->height = static_cast<int>(h);
  av.codec->time_base = av_inv_q(rate);
  av.codec->framerate = rate;
  av.codec->pix_fmt = AV_PIX_FMT_YUV420P;
  av.codec->colorspace = AVCOL_SPC_SMPTE170M;
  av.codec->color_primaries = AVCOL_PRI_SMPTE170M;
  av.codec->color_trc = AVCOL_TRC_SMPTE170M;
  av.codec->color_range = AVCOL_RANGE_MPEG;
  if (av.fmt->oformat->flags & AVFMT_GLOBALHEADER) av.codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (enc->id == AV_CODEC_ID_H264) {
    av_opt_set(av.codec->priv_data, "crf", "18", 0);  // visually lossless for 8-bit video
    av_opt_set(av.codec->priv_data, "preset", "medium", 0);
  } else {
    av.codec->flags |= AV_CODEC_FLAG_QSCALE;
    av.codec->global_quality = FF_QP2LAMBDA * 3;
  }
  check(avcodec_open2(av.codec, enc, nullptr), "opening the video encoder");
  check(avcodec_parameters_from_context(st->codecpar, av.codec), "MP4 stream parameters");
  st->time_base = av.codec->time_base;
  st->avg_frame_rate = rate;
  check(avio_open(&av.fmt->pb, tmp.c_str(), AVIO_FLAG_WRITE), "opening the output file");
  AVDictionary* mux = nullptr;
  av_dict_set(&mux, "movflags", "+faststart", 0);  // index first: plays while downloading
  const int r = avformat_write_header(av.fmt, &mux);
  av_dict_free(&mux);
  check(r, "writing the MP4 header");
}

// Sends one frame (nullptr: flush) and writes every packet the encoder returns.
void encode(Av& av, const AVFrame* frame) {
  check(avcodec_send_frame(av.codec, frame), "encoding a frame");
  AVStream* st = av.fmt->streams[0];
  while (true) {
    const int r = avcodec_receive_packet(av.codec, av.packet);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
    check(r, "encoding a frame");
    av_packet_rescale_ts(av.packet, av.codec->time_base, st->time_base);
    av.packet->stream_index = st->index;
    check(av_interleaved_write_frame(av.fmt, av.packet), "writing a packet");
  }
}

void encode_frames(Av& av, const torch::Tensor& frames) {
  const int w = av.codec->width, h = av.codec->height;
  av.frame = av_frame_alloc();
  av.packet = av_packet_alloc();
  if (!av.frame || !av.packet) fail("out of memory encoding video");
  av.frame->format = AV_PIX_FMT_YUV420P;
  av.frame->width = w;
  av.frame->height = h;
  check(av_frame_get_buffer(av.frame, 0), "allocating a video frame");
  av.sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P,
                          SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
  if (!av.sws) fail("cannot convert RGB frames to YUV 4:2:0");
  set_colorspace(av.sws, AVCOL_SPC_SMPTE170M, false, true);
  for (int64_t i = 0; i < frames.size(0); ++i) {
    check(av_frame_make_writable(av.frame), "video frame");
    const uint8_t* src[1] = {frames[i].data_ptr<uint8_t>()};
    const int stride[1] = {3 * w};
    sws_scale(av.sws, src, stride, 0, h, av.frame->data, av.frame->linesize);
    av.frame->pts = i;
    encode(av, av.frame);
  }
  encode(av, nullptr);
  check(av_write_trailer(av.fmt), "finishing the MP4 file");
}

// Stride-1 RGB of every frame of the best video stream.
Video decode_stream(Av& av, const char* what, int64_t max_bytes) {
  check(avformat_find_stream_info(av.fmt, nullptr), "reading the stream information");
  const AVCodec* dec = nullptr;
  const int idx = av_find_best_stream(av.fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
  if (idx < 0 || !dec) fail(what, " has no video stream this FFmpeg decodes");
  const AVStream* st = av.fmt->streams[idx];
  av.codec = avcodec_alloc_context3(dec);
  av.frame = av_frame_alloc();
  av.packet = av_packet_alloc();
  if (!av.codec || !av.frame || !av.packet) fail("out of memory decoding video");
  check(avcodec_parameters_to_context(av.codec, st->codecpar), "video stream parameters");
  av.codec->thread_count = 1;
  // The decoder allocates its own frames before we see one: bound their size by the budget too.
  av.codec->max_pixels = std::min<int64_t>(max_bytes / 3, kMaxVideoSide * kMaxVideoSide);
  check(avcodec_open2(av.codec, dec, nullptr), "opening the video decoder");
  std::vector<torch::Tensor> out;
  auto receive = [&] {
    while (true) {
      const int r = avcodec_receive_frame(av.codec, av.frame);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      check(r, "decoding a frame");
      const int w = av.frame->width, h = av.frame->height;
      if (!out.empty() && (w != out[0].size(1) || h != out[0].size(0)))
        fail(what, ": the frame size changes from ", out[0].size(1), "x", out[0].size(0), " to ", w, "x", h);
      check_video_budget(w, h, static_cast<int64_t>(out.size()), what, max_bytes);
      av.sws = sws_getCachedContext(av.sws, w, h, static_cast<AVPixelFormat>(av.frame->format), w, h, AV_PIX_FMT_RGB24,
                                    SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
      if (!av.sws) fail(what, ": cannot convert its pixel format to RGB");
      set_colorspace(av.sws, av.frame->colorspace, av.frame->color_range == AVCOL_RANGE_JPEG, false);
      auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
      uint8_t* dst[1] = {rgb.data_ptr<uint8_t>()};
      const int stride[1] = {3 * w};
      sws_scale(av.sws, av.frame->data, av.frame->linesize, 0, h, dst, stride);
      out.push_back(rgb);
      av_frame_unref(av.frame);
    }
  };
  int r = 0;
  while ((r = av_read_frame(av.fmt, av.packet)) >= 0) {
    const bool ours = av.packet->stream_index == idx;
    const int sent = ours ? avcodec_send_packet(av.codec, av.packet) : 0;
    av_packet_unref(av.packet);
    check(sent, "decoding a packet");
    receive();
  }
  if (r != AVERROR_EOF) check(r, "reading the container");
  check(avcodec_send_packet(av.codec, nullptr), "flushing the decoder");
  receive();
  if (out.empty()) fail(what, " holds no decodable video frame");
  // A container that counts its frames (MP4's index) and has fewer is a truncated file.
  if (st->nb_frames > 0 && static_cast<int64_t>(out.size()) < st->nb_frames)
    fail(what, " is truncated: ", out.size(), " of its ", st->nb_frames, " frames decode");
  Video v;
  v.frames = torch::stack(out);
  const AVRational rate = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
  v.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
  return v;
}

AVDictionary* input_options(bool file) {
  AVDictionary* d = nullptr;
  av_dict_set(&d, "format_whitelist", kFormats, 0);
  av_dict_set(&d, "protocol_whitelist", file ? "file" : "", 0);
  return d;
}

struct MemoryReader {
  const uint8_t* data;
  size_t size, pos = 0;
};

int read_memory(void* opaque, uint8_t* buf, int n) {
  auto* m = static_cast<MemoryReader*>(opaque);
  const size_t take = std::min(static_cast<size_t>(std::max(n, 0)), m->size - m->pos);
  if (take == 0) return AVERROR_EOF;
  std::memcpy(buf, m->data + m->pos, take);
  m->pos += take;
  return static_cast<int>(take);
}

int64_t seek_memory(void* opaque, int64_t offset, int whence) {
  auto* m = static_cast<MemoryReader*>(opaque);
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) return static_cast<int64_t>(m->size);
  const int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? static_cast<int64_t>(m->pos)
                                          : whence == SEEK_END ? static_cast<int64_t>(m->size) : -1;
  if (base < 0 || offset > static_cast<int64_t>(m->size) - base || base + offset < 0) return -1;
  m->pos = static_cast<size_t>(base + offset);
  return static_cast<int64_t>(m->pos);
}

}  // namespace

bool ffmpeg_available() { return true; }

std::string mp4_encoder_description() {
  const AVCodec* c = mp4_encoder();
  if (!c) return "none (this FFmpeg has no H.264 or MPEG-4 encoder)";
  return std::string(c->name) + (c->id == AV_CODEC_ID_H264 ? " (H.264)" : " (MPEG-4 Part 2: no H.264 encoder found)");
}

void write_mp4(const std::string& path, const torch::Tensor& frames_in, const VideoWriteOptions& opt) {
  quiet_ffmpeg();
  // 4:2:0 chroma covers 2x2 pixels: pad an odd side by repeating the last row or column.
  torch::Tensor frames = frames_in;
  if (frames.size(1) % 2) frames = torch::cat({frames, frames.narrow(1, frames.size(1) - 1, 1)}, 1);
  if (frames.size(2) % 2) frames = torch::cat({frames, frames.narrow(2, frames.size(2) - 1, 1)}, 2);
  frames = frames.contiguous();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + ".mp4";
  try {
    Av av;
    open_encoder(av, tmp, frames.size(2), frames.size(1), opt);
    encode_frames(av, frames);
  } catch (const Error& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    fail("writing '", path, "': ", e.what());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail("cannot move the finished video to '", path, "'");
  }
}

Video read_ffmpeg_file(const std::string& path) {
  quiet_ffmpeg();
  Av av;
  AVDictionary* opts = input_options(true);
  const int r = avformat_open_input(&av.fmt, path.c_str(), nullptr, &opts);
  av_dict_free(&opts);
  check(r, "not a video file FFmpeg reads");
  av.opened_input = true;
  return decode_stream(av, "the video", kMaxVideoBytes);
}

Video read_ffmpeg_memory(const uint8_t* data, size_t size, int64_t max_bytes) {
  quiet_ffmpeg();
  MemoryReader mem{data, size};
  Av av;
  auto* buf = static_cast<uint8_t*>(av_malloc(1 << 16));
  av.custom_io = buf ? avio_alloc_context(buf, 1 << 16, 0, &mem, read_memory, nullptr, seek_memory) : nullptr;
  if (!av.custom_io) {
    av_free(buf);
    fail("out of memory reading video");
  }
  av.fmt = avformat_alloc_context();
  if (!av.fmt) fail("out of memory reading video");
  av.fmt->pb = av.custom_io;
  av.fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  AVDictionary* opts = input_options(false);
  const int r = avformat_open_input(&av.fmt, nullptr, nullptr, &opts);  // frees fmt on failure
  av_dict_free(&opts);
  check(r, "not a video FFmpeg reads");
  av.opened_input = true;
  return decode_stream(av, "the video", max_bytes);
}

#endif

}  // namespace sdit

#pragma once
// Token grids carried explicitly everywhere: (frames, h, w) in patches, never recovered by √N.
// An image model has frames = 1; a video model (Latte) patchifies every frame on its own grid.
#include <cstdint>
#include <string>

namespace sdit {

struct Grid {
  int64_t frames = 1, h = 0, w = 0;

  int64_t per_frame() const { return h * w; }
  int64_t tokens() const { return frames * h * w; }
  bool empty() const { return h <= 0 || w <= 0; }
  bool square() const { return h == w; }
  bool operator==(const Grid& o) const { return frames == o.frames && h == o.h && w == o.w; }
  bool operator!=(const Grid& o) const { return !(*this == o); }
  // Most tokens first, so tables list the data end of a schedule first.
  bool operator<(const Grid& o) const {
    if (tokens() != o.tokens()) return tokens() > o.tokens();
    if (frames != o.frames) return frames > o.frames;
    return h != o.h ? h > o.h : w > o.w;
  }
  // "16x16", "4x16x16" with frames.
  std::string str() const {
    std::string s = std::to_string(h) + "x" + std::to_string(w);
    return frames > 1 ? std::to_string(frames) + "x" + s : s;
  }
};

inline Grid square_grid(int64_t side, int64_t frames = 1) { return Grid{frames, side, side}; }

}  // namespace sdit

#pragma once
// Which part of n items (a global batch's samples, a batch of images to sample, a list of files) rank r
// of a world of w handles: the contiguous range [r*n/w, (r+1)*n/w). Ranks differ by at most one item,
// the ranges cover 0..n-1 exactly once in rank order, and world 1 gets everything, so concatenating the
// ranks' results in rank order (World::all_gather_rows) gives the single-process order.
#include <cstdint>

#include "util/error.h"

namespace sdit::dist {

struct Shard {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

inline Shard shard_range(int64_t n, int rank, int world) {
  if (n < 0 || world < 1 || rank < 0 || rank >= world)
    fail("shard_range: ", n, " items for rank ", rank, " of ", world);
  return Shard{n * rank / world, n * (rank + 1) / world};
}

}  // namespace sdit::dist

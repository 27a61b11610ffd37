#pragma once
// Limits that keep a hostile or corrupt file from costing unbounded memory or time. Readers check
// what a file declares (sizes, counts, extents, dimensions) against these and against the bytes
// the file really holds before they allocate; docs/hostile-files.md lists them for users.
#include <cstdint>

namespace sdit {

// Real tensors have a handful of dimensions (PyTorch's kernels stop at 25); more means corruption,
// and a rank taken at face value costs memory per dimension.
constexpr int64_t kMaxTensorRank = 64;

// A pickle may share objects (memo references), so a small file can describe a tree far larger
// than itself. Values are shared, never copied per reference, but whoever walks the tree pays per
// reference. Counted that way, a pickle may hold at most kPickleExpansionValues values plus one
// per byte of the pickle (each reference costs at least a byte, so only shared containers can
// exceed that), and kPickleExpansionBytes string bytes plus 16 per pickle byte (a memo reference
// of 2 bytes may repeat a string of 32).
constexpr uint64_t kPickleExpansionValues = uint64_t(1) << 20;
constexpr uint64_t kPickleExpansionBytes = uint64_t(1) << 26;
constexpr uint64_t kPickleExpansionBytesPerByte = 16;
// Nesting deeper than this is refused (recursion depth; real checkpoints nest a few levels).
constexpr int kPickleMaxDepth = 256;

// Decoded images: PIL's DecompressionBombError threshold (2 * PIL.Image.MAX_IMAGE_PIXELS), so every
// image the reference pipeline opens opens here too. SPARSEDIT_MAX_IMAGE_PIXELS overrides it.
constexpr int64_t kDefaultMaxImagePixels = 178956970;
// libpng's own defaults, set explicitly: the largest ancillary chunk it will allocate (text,
// ICC profile, decompressed zTXt) and the most ancillary chunks it keeps.
constexpr uint64_t kPngChunkMallocMax = 8000000;
constexpr uint32_t kPngChunkCacheMax = 1000;
// Each progressive JPEG scan revisits the whole image; encoders write about ten. libjpeg-turbo's
// own tools suggest a scan limit against exactly this denial of service.
constexpr int kJpegMaxScans = 256;

}  // namespace sdit

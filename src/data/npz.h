#pragma once
// NumPy's .npy (format 1.0/2.0/3.0) and .npz (a zip of .npy files) as the ADM evaluator exchanges
// them: sample batches (`arr_0` uint8 NHWC, optional `arr_1` labels) and reference statistics
// (`mu`, `sigma`). Headers are parsed strictly, since reference batches come from elsewhere.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/zip.h"

namespace sdit {

// One .npy image in memory -> a CPU tensor (copied). Little-endian (or byte-order-free) bool,
// int8/16/32/64, uint8 and float16/32/64; fortran_order is honoured. Throws sdit::Error naming
// `what` on a bad magic, an unsupported version or dtype, a malformed header dictionary, or a data
// size that disagrees with the shape. With `keep` (the mapped file `data` lies in), a C-order array
// whose data is aligned for its dtype is returned as a view that keeps the map alive: a 50K-image
// sample batch is then paged in as it is read instead of copied whole.
torch::Tensor parse_npy(const uint8_t* data, size_t size, const std::string& what,
                        const std::shared_ptr<MappedFile>& keep = nullptr);
// The header numpy.save writes (format 1.0, or 2.0 when the dictionary needs more than 64 KiB),
// padded so the data starts on a 64-byte boundary.
std::string npy_header(torch::ScalarType dtype, const std::vector<int64_t>& shape);
// Header plus data of a CPU tensor of a dtype parse_npy reads.
std::string encode_npy(const torch::Tensor& t);

class NpzReader {
 public:
  explicit NpzReader(const std::string& path);
  explicit NpzReader(std::shared_ptr<MappedFile> file);  // bytes in memory (tests, fuzz targets)
  // Array names without the ".npy" suffix, in archive order.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  // Reads one array; stored (np.savez) and deflated (np.savez_compressed) entries both work. A stored
  // entry's array is a view of the (copy-on-write) mapped file where parse_npy allows it.
  torch::Tensor get(const std::string& name) const;
  const std::string& path() const { return zip_.path(); }

 private:
  const ZipEntry* entry(const std::string& name) const;
  ZipReader zip_;
};

// Atomic write of name -> array (np.savez layout: stored entries "<name>.npy").
void write_npz(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& arrays);

// Samples as DiT's sample_ddp.py stores them: clamp(127.5·x + 128, 0, 255) truncated to uint8
// (computed in float32). images: (N, C, H, W) float in [-1, 1] -> (N, C, H, W) uint8.
torch::Tensor quantize_images(const torch::Tensor& images_nchw);
// ADM sample batch: `arr_0` = quantize_images(images) as NHWC uint8, and `arr_1` = labels (int64)
// when given, as ADM's class-conditional sampler writes them.
void write_npz_images(const std::string& path, const torch::Tensor& images_nchw_minus1_1,
                      const torch::Tensor& labels = {});

// The same file written as the images come, so a 50K-image run never holds them all: arr_0 is
// declared for `count` images, add() quantizes and appends a batch (the first fixes C, H, W),
// finish() checks the count, adds arr_1 (labels, when defined) and commits the file atomically.
// Destroyed unfinished, it leaves nothing behind.
class NpzImageWriter {
 public:
  NpzImageWriter(const std::string& path, int64_t count);
  void add(const torch::Tensor& images_nchw_minus1_1);
  void finish(const torch::Tensor& labels = {});

 private:
  AtomicFile out_;
  ZipWriter zip_;
  int64_t count_, added_ = 0;
  std::vector<int64_t> image_shape_;  // (C, H, W) of the first batch
};

}  // namespace sdit

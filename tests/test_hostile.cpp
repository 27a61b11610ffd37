// Hostile files (issue 20): tiny inputs that used to cost gigabytes or tens of seconds must now be
// answered with a clear error or a cheap success, within a memory and time budget.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "error_testing.h"
#include "image_builders.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/image.h"
#include "io/limits.h"
#include "io/pickle.h"
#include "io/safetensors.h"
#include "io/torch_pt.h"
#include "io/zip.h"
#include "pt_builders.h"
#include "testing.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace sdit;

namespace {

int64_t status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::atoll(line.c_str() + std::strlen(field));
  return -1;
}

// Runs f and checks that the process's peak resident memory grew by less than max_mb and that
// it took less than max_s. The peak is reset first (/proc/self/clear_refs), so the budget is
// this process's own, whatever else the machine runs.
template <typename F>
void within_budget(const std::string& what, int64_t max_mb, double max_s, F&& f) {
  const bool reset = static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5");
  const int64_t before = status_kb("VmRSS:");
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t peak = status_kb(reset ? "VmHWM:" : "VmRSS:");
  EXPECT_LT(peak - before, max_mb * 1024) << what << ": peak memory grew by " << (peak - before) / 1024 << " MB";
  EXPECT_LT(s, max_s) << what << ": took " << s << " s";
}

class HostileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir(); }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string temp_dir() {
    static int counter = 0;
    const std::string d = "/tmp/sdit_hostile_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    fs::create_directories(d);
    return d;
  }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  std::string dir_;
};

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(&s[0], v.begin(), s.size());
  return s;
}

// A protocol-2 pickle from raw opcodes written by `body`, ending with STOP.
template <typename F>
std::string pickle(F&& body) {
  PickleWriter w;
  w.proto(2);
  body(w);
  return w.stop().bytes();
}

}  // namespace

// The issue's 354-byte .pt: a 32768 x 32768 float tensor with stride 0 over a 1-element storage
// (4 GiB if copied out). PyTorch keeps it as a view; so do we.
TEST_F(HostileTest, Stride0TensorStaysAView) {
  const std::string bytes = pt_archive_bytes(tensor_pickle("0", 1, {32768, 32768}, {0, 0}).bytes(), {{"0", floats({1.5f})}});
  EXPECT_LT(bytes.size(), 1024u);
  const std::string p = write("stride0.pt", bytes);
  within_budget("stride-0 tensor", 100, 5.0, [&] {
    const PyValue v = read_torch_pt(p);
    const torch::Tensor& t = v.get("w")->tensor;
    EXPECT_EQ(t.sizes().vec(), std::vector<int64_t>({32768, 32768}));
    EXPECT_EQ(t.strides().vec(), std::vector<int64_t>({0, 0}));
    EXPECT_EQ(t.storage().nbytes(), 4u);
    EXPECT_EQ(t[32767][32767].item<float>(), 1.5f);
    const StateDict sd = load_checkpoint(p);
    EXPECT_EQ(sd.at("w").storage().nbytes(), 4u);
  });
}

// Views of one storage share it, as saved: offsets and strides as PyTorch wrote them.
TEST_F(HostileTest, SharedStoragesAndOffsetsAreViews) {
  PickleWriter w;
  w.proto(2).empty_dict().mark();
  for (int k = 0; k < 2; ++k) {
    w.str(k == 0 ? "head" : "tail").global("torch._utils", "_rebuild_tensor_v2").mark();
    w.mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(6).tuple_from_mark().binpersid();
    w.integer(k == 0 ? 0 : 3).int_tuple({3}).int_tuple({1}).boolean(false);
    w.global("collections", "OrderedDict").empty_tuple().reduce().tuple_from_mark().reduce();
  }
  w.setitems().stop();
  const PyValue v = read_torch_pt(write("shared.pt", pt_archive_bytes(w.bytes(), {{"0", floats({1, 2, 3, 4, 5, 6})}})));
  const torch::Tensor head = v.get("head")->tensor, tail = v.get("tail")->tensor;
  EXPECT_TRUE(torch::equal(tail, torch::tensor({4.f, 5.f, 6.f})));
  EXPECT_EQ(tail.storage_offset(), 3);
  EXPECT_EQ(head.storage().data(), tail.storage().data());
}

// Every extent is checked against the storage before a view is made, with overflow-safe sums.
TEST_F(HostileTest, TensorExtentsAreCheckedAgainstTheirStorage) {
  const std::vector<std::pair<std::string, std::string>> st = {{"0", floats({1, 2, 3, 4})}};
  auto load = [&](const PickleWriter& w) { return read_torch_pt(write("t.pt", pt_archive_bytes(w.bytes(), st))); };
  expect_error([&] { load(tensor_pickle("0", 4, {2}, {1}, 3)); }, "beyond its storage");
  expect_error([&] { load(tensor_pickle("0", 4, {1}, {1}, 4)); }, "beyond its storage");
  expect_error([&] { load(tensor_pickle("0", 4, {2}, {1}, -1)); }, "negative storage offset");
  expect_error([&] { load(tensor_pickle("0", 4, {3, 2}, {int64_t(1) << 62, 1})); }, "overflows");
  expect_error([&] { load(tensor_pickle("0", 4, {int64_t(1) << 40, int64_t(1) << 40}, {0, 0})); }, "overflows");
  expect_error([&] { load(tensor_pickle("0", int64_t(1) << 62, {1}, {1})); }, "size overflows");
  expect_error([&] { load(tensor_pickle("0", 4, std::vector<int64_t>(kMaxTensorRank + 1, 1),
                                        std::vector<int64_t>(kMaxTensorRank + 1, 1))); },
               "dimensions");
  // An empty tensor may sit at the very end of its storage.
  EXPECT_EQ(load(tensor_pickle("0", 4, {0, 5}, {5, 1}, 4)).get("w")->tensor.numel(), 0);
}

// The issue's 186-byte legacy .pt claimed a 4.35 GB storage, which the first pass allocated.
TEST_F(HostileTest, LegacyStorageClaimsAreCheckedAgainstTheStream) {
  StateDict sd;
  sd.set("w", torch::ones({1}));
  const std::string bytes = legacy_pt_bytes(sd, "torch", "FloatStorage", 1'087'000'000);
  EXPECT_LT(bytes.size(), 400u);
  const std::string p = write("legacy.pth", bytes);
  within_budget("legacy storage claim", 100, 5.0, [&] { expect_error([&] { read_torch_pt(p); }, "claims 1087000000 elements"); });
  // A consistent stream still loads, its tensors views of the mapped file.
  sd.set("v", torch::arange(5, torch::kFloat));
  const StateDict back = load_checkpoint(write("ok.pth", legacy_pt_bytes(sd)));
  EXPECT_TRUE(torch::equal(back.at("v"), sd.at("v")));
}

// The issue's 252-byte pickle: lists of two references to the previous list, 32 deep, describe
// 2^33 values. Refused from the shared structure's size before anything is expanded.
TEST_F(HostileTest, ExponentialSharingIsRefusedQuickly) {
  auto nested = [](int levels) {
    return pickle([&](PickleWriter& w) {
      w.raw(']').raw('q').raw(0).raw('0');
      for (int i = 1; i <= levels; ++i)
        w.raw(']').raw('(').raw('h').raw(i - 1).raw('h').raw(i - 1).raw('e').raw('q').raw(i).raw('0');
      w.raw('h').raw(levels);
    });
  };
  const std::string big = nested(32);
  EXPECT_LT(big.size(), 400u);
  const std::string p = write("dag.pt", pt_archive_bytes(big));
  within_budget("exponential sharing", 100, 5.0, [&] { expect_error([&] { read_torch_pt(p); }, "expand to"); });

  // Within the limits, a shared list is one object reached twice, not two copies.
  const PyValue v = read_torch_pt(write("small.pt", pt_archive_bytes(nested(8))));
  ASSERT_EQ(v.items.size(), 2u);
  EXPECT_EQ(v.items[0].items.begin(), v.items[1].items.begin());
}

// The issue's 1.3 KB pickle: a string referenced a million times through shared lists (3.3 GB
// when copied per reference). A string referenced often is stored once; past the limit on what a
// walker would see, the pickle is refused.
TEST_F(HostileTest, RepeatedStringsAreSharedNotCopied) {
  const std::string text(60000, 's');
  const std::string many = pickle([&](PickleWriter& w) {
    w.str(text).raw('q').raw(0).raw('0').raw(']').raw('(');
    for (int i = 0; i < 1000; ++i) w.raw('h').raw(0);
    w.raw('e');
  });
  const std::string p = write("strings.pt", pt_archive_bytes(many));
  within_budget("a string referenced 1000 times", 100, 5.0, [&] {
    const PyValue v = read_torch_pt(p);
    ASSERT_EQ(v.items.size(), 1000u);
    EXPECT_EQ(v.items[999].str, text);
    EXPECT_EQ(v.items[0].str.c_str(), v.items[999].str.c_str());
  });

  const std::string bomb = pickle([&](PickleWriter& w) {
    w.str(std::string(1000, 'x')).raw('q').raw(0).raw('0');
    for (int level = 1; level <= 3; ++level) {
      w.raw(']').raw('(');
      for (int i = 0; i < 100; ++i) w.raw('h').raw(level - 1);
      w.raw('e').raw('q').raw(level).raw('0');
    }
    w.raw('h').raw(3);
  });
  EXPECT_LT(bomb.size(), 1700u);
  const std::string pb = write("bomb.pt", pt_archive_bytes(bomb));
  within_budget("a string reached a million times", 100, 5.0, [&] { expect_error([&] { read_torch_pt(pb); }, "string bytes"); });
}

TEST_F(HostileTest, CyclesAndRepeatedStateAreRefused) {
  const std::string cycle = pickle([](PickleWriter& w) { w.raw(']').raw('q').raw(0).raw('h').raw(0).raw('a'); });
  expect_error([&] { read_torch_pt(write("cycle.pt", pt_archive_bytes(cycle))); }, "contains itself");
  // A BUILD per reference would copy the object's state again each time.
  const std::string twice = pickle([](PickleWriter& w) {
    w.global("argparse", "Namespace").empty_tuple().reduce().raw('q').raw(0);
    w.empty_dict().mark().str("a").integer(1).setitems().raw('b');
    w.raw('h').raw(0).empty_dict().raw('b');
  });
  expect_error([&] { read_torch_pt(write("twice.pt", pt_archive_bytes(twice))); }, "a second BUILD state");
}

// Work per opcode must not grow with what memo references point at: the first two cases made a
// pickle of a few hundred KB cost time and memory proportional to its size squared.
TEST_F(HostileTest, MemoReferencesCostConstantWorkPerOpcode) {
  auto answered = [&](const std::string& name, const std::string& archive) {
    const std::string p = write(name, archive);
    within_budget(name, 200, 5.0, [&] {
      try {
        read_torch_pt(p);
      } catch (const Error&) {
      }
    });
  };
  // One 20000-entry state dict given to 20000 objects by BUILD: was copied per object.
  answered("states.pt", pt_archive_bytes(pickle([](PickleWriter& w) {
    w.global("argparse", "Namespace").raw('q').raw(0).raw('0').empty_dict().mark();
    for (int i = 0; i < 20000; ++i) w.str("a" + std::to_string(i)).integer(i);
    w.setitems().raw('q').raw(1).raw('0').raw(']').mark();
    for (int i = 0; i < 20000; ++i) w.raw('h').raw(0).empty_tuple().reduce().raw('h').raw(1).raw('b');
    w.raw('e');
  })));
  // A 60000-character storage key, its persistent id referenced 300000 times: was hashed per use.
  const std::string key(60000, 'k');
  answered("keys.pt", pt_archive_bytes(pickle([&](PickleWriter& w) {
    w.mark().str("storage").global("torch", "FloatStorage").str(key).str("cpu").integer(1).tuple_from_mark();
    w.raw('q').raw(1).raw('0');
    for (int i = 0; i < 300000; ++i) w.raw('h').raw(1).raw('Q').raw('0');
    w.empty_dict();
  }), {{key, floats({1})}}));
  // STACK_GLOBAL on two megabyte strings: refused without building the name.
  const std::string huge_names = pickle([](PickleWriter& w) {
    w.str(std::string(1 << 20, 'm')).raw('q').raw(0).str(std::string(1 << 20, 'n')).raw('q').raw(1).raw(0x93);
  });
  expect_error([&] { read_torch_pt(write("names.pt", pt_archive_bytes(huge_names))); }, "is not allowed");
}

TEST_F(HostileTest, SafetensorsHeadersCannotBuildLargeTrees) {
  auto st = [&](const std::string& header) {
    std::string b(8, '\0');
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(uint64_t(header.size()) >> (8 * i));
    return write("h.safetensors", b + header);
  };
  expect_error([&] { read_safetensors(st(R"({"a":{"shape":[[[1]]]}})")); }, "nests deeper");
  std::string longlist = R"({"a":{"dtype":"F32","data_offsets":[0,0],"shape":[)";
  for (int i = 0; i < 200000; ++i) longlist += "0,";
  longlist += "0]}}";
  const std::string p = st(longlist);
  within_budget("a 400 KB shape list", 100, 5.0, [&] { expect_error([&] { read_safetensors(p); }, "longer than 64"); });
  // Many tensors: read in n log n (an insertion-ordered JSON object would search linearly per key).
  std::string many = "{";
  for (int i = 0; i < 100000; ++i) many += (i ? ",\"t" : "\"t") + std::to_string(i) + R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  many += "}";
  const std::string pm = st(many);
  within_budget("a header of 100000 tensors", 400, 5.0, [&] {
    const StateDict sd = read_safetensors(pm);
    ASSERT_EQ(sd.size(), 100000u);
    EXPECT_EQ(sd.keys()[0], "t0");  // in the header's order
    EXPECT_EQ(sd.keys()[99999], "t99999");
  });
  std::string rank65 = R"({"a":{"dtype":"F32","data_offsets":[0,0],"shape":[0)";
  for (int i = 0; i < 64; ++i) rank65 += ",1";
  expect_error([&] { read_safetensors(st(rank65 + "]}}")); }, "longer than 64");
}

namespace {

// The PNG with its IHDR (the first chunk) claiming width x height, CRC fixed.
std::string png_claiming(uint32_t width, uint32_t height) {
  std::string png = png_bytes(PNG_COLOR_TYPE_RGB, 8, false, 9, 7, false);
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + i] = static_cast<char>(v >> (24 - 8 * i));
  };
  put32(16, width);
  put32(20, height);
  put32(29, crc32(png.data() + 12, 17));  // over "IHDR" and its 13 bytes
  return png;
}

}  // namespace

// The issue's 50-byte PNG made the reader allocate 2.25 GB: 1,000,000 x 750 RGB.
TEST_F(HostileTest, PngDimensionsAndChunksAreLimited) {
  const std::string p = write("wide.png", png_claiming(1000000, 750));
  within_budget("a PNG claiming 750 M pixels", 100, 5.0, [&] { expect_error([&] { read_image(p); }, "wide.png' is 1000000x750"); });
  // Under the pixel limit but without the data: the data runs out before much is decoded.
  const std::string q = write("big.png", png_claiming(10000, 10000));
  within_budget("a PNG claiming 100 M pixels", 100, 5.0, [&] { expect_error([&] { read_image(q); }, "big.png"); });
  // An ancillary chunk claiming 2 GB after the header.
  std::string chunk = png_bytes(PNG_COLOR_TYPE_RGB, 8, false, 9, 7, false);
  chunk.insert(33, std::string("\x7f\xff\x00\x00tEXtkey\0value", 17));
  const std::string c = write("chunk.png", chunk);
  within_budget("a PNG chunk claiming 2 GB", 100, 5.0, [&] { expect_error([&] { read_image(c); }, "chunk.png"); });

  // The limit can be lowered or raised: a parameter, or SPARSEDIT_MAX_IMAGE_PIXELS.
  const std::string ok = write("ok.png", png_bytes(PNG_COLOR_TYPE_RGB, 8, false, 9, 7, false));
  EXPECT_EQ(read_image(ok).sizes().vec(), std::vector<int64_t>({7, 9, 3}));
  expect_error([&] { read_image(ok, 62); }, "over the limit of 62");
  ::setenv("SPARSEDIT_MAX_IMAGE_PIXELS", "62", 1);
  expect_error([&] { read_image(ok); }, "SPARSEDIT_MAX_IMAGE_PIXELS");
  EXPECT_EQ(read_image(ok, 63).size(1), 9);
  ::setenv("SPARSEDIT_MAX_IMAGE_PIXELS", "lots", 1);
  expect_error([&] { read_image(ok); }, "must be a positive integer");
  ::unsetenv("SPARSEDIT_MAX_IMAGE_PIXELS");
  EXPECT_EQ(max_image_pixels(), kDefaultMaxImagePixels);
}

// Alpha is dropped in place (PIL's convert("RGB")), and every colour type decodes as before.
TEST_F(HostileTest, PngVariantsDecode) {
  for (int color : {PNG_COLOR_TYPE_RGB_ALPHA, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_PALETTE, PNG_COLOR_TYPE_GRAY}) {
    const std::string bytes = png_bytes(color, 8, color == PNG_COLOR_TYPE_GRAY_ALPHA, 13, 6, color == PNG_COLOR_TYPE_PALETTE);
    const torch::Tensor img = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "v.png");
    EXPECT_EQ(img.sizes().vec(), std::vector<int64_t>({6, 13, 3})) << color;
    EXPECT_TRUE(img.is_contiguous());
    // The same pixels as libpng's own RGBA decode with the alpha channel cut off.
    const torch::Tensor again = read_png(write("v.png", bytes));
    EXPECT_TRUE(torch::equal(img, again));
  }
  const std::string rgba = png_bytes(PNG_COLOR_TYPE_RGB_ALPHA, 8, false, 5, 2, false);
  const torch::Tensor img = decode_image(reinterpret_cast<const uint8_t*>(rgba.data()), rgba.size(), "a.png");
  // png_bytes fills row y, byte i with i * 37 + y * 11: pixel x's RGB are bytes 4x .. 4x+2.
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(img[y][x][c].item<uint8_t>(), static_cast<uint8_t>((4 * x + c) * 37 + y * 11));
}

TEST_F(HostileTest, TruncatedImagesAreErrorsNamingTheFile) {
  const std::string png = png_bytes(PNG_COLOR_TYPE_RGB, 8, false, 40, 30, false);
  expect_error([&] { read_image(write("cut.png", png.substr(0, png.size() / 2))); }, "cut.png");
  expect_error([&] { read_image(write("cut2.png", png.substr(0, png.size() - 12))); }, "cut2.png");
  if (!jpeg_supported()) GTEST_SKIP() << "built without libjpeg";
#ifdef SPARSEDIT_HAVE_JPEG
  for (bool progressive : {false, true}) {
    const std::string jpg = jpeg_bytes(JCS_RGB, 3, progressive, true, 64, 48);
    EXPECT_EQ(read_image(write("whole.jpg", jpg)).sizes().vec(), std::vector<int64_t>({48, 64, 3}));
    // libjpeg only warns and pads with grey; PIL says "image file is truncated", and so do we.
    for (size_t cut : {jpg.size() / 2, jpg.size() - 2}) {
      const std::string p = write("cut.jpg", jpg.substr(0, cut));
      expect_error([&] { read_image(p); }, "cut.jpg");
      expect_error([&] { read_image(p); }, "truncated");
    }
  }
#endif
}

#ifdef SPARSEDIT_HAVE_JPEG
namespace {

// Offset of the first marker `code` (0xFF code) in a JPEG.
size_t marker(const std::string& jpg, uint8_t code) {
  const size_t at = jpg.find(std::string("\xff") + static_cast<char>(code));
  EXPECT_NE(at, std::string::npos);
  return at;
}

}  // namespace

// The issue's 297-byte JPEG claimed 65500 x 65500 and decoded for 60 s into 9.8 GB.
TEST_F(HostileTest, JpegDimensionsAndScansAreLimited) {
  std::string jpg = jpeg_bytes(JCS_RGB, 3, false, true, 16, 16);
  const size_t sof = marker(jpg, 0xC0);
  for (int i : {5, 7}) {  // height, then width: big-endian 16-bit
    jpg[sof + i] = static_cast<char>(0xFF);
    jpg[sof + i + 1] = static_cast<char>(0xDC);
  }
  const std::string p = write("huge.jpg", jpg);
  within_budget("a JPEG claiming 65500 x 65500", 100, 5.0, [&] { expect_error([&] { read_image(p); }, "huge.jpg' is 65500x65500"); });

  // Each progressive scan revisits the whole image: a file repeating one scan 300 times is refused.
  const std::string prog = jpeg_bytes(JCS_GRAYSCALE, 1, true, false, 64, 64);
  const size_t sos = marker(prog, 0xDA);
  size_t end = sos + 2;
  while (true) {  // the scan runs to the next marker that is not a stuffed 0xFF00 or a restart
    end = prog.find('\xff', end);
    ASSERT_NE(end, std::string::npos);
    const auto m = static_cast<uint8_t>(prog[end + 1]);
    if (m != 0x00 && !(m >= 0xD0 && m <= 0xD7)) break;
    end += 2;
  }
  std::string many = prog.substr(0, end);
  for (int i = 0; i < 300; ++i) many += prog.substr(sos, end - sos);
  many += prog.substr(end);
  const std::string q = write("scans.jpg", many);
  within_budget("a JPEG of 300 scans", 100, 5.0, [&] { expect_error([&] { read_image(q); }, "progressive scans"); });
}
#endif

// ADM's centre crop scales the short side to the target size: a 1-pixel-high image would become
// 256 x 25.6 million. Refused by the same pixel limit as decoding.
TEST_F(HostileTest, ResizeRefusesAbsurdResults) {
  const torch::Tensor thin = torch::zeros({1, 100000, 3}, torch::kUInt8);
  within_budget("centre crop of a 1 x 100000 image", 100, 5.0,
                [&] { expect_error([&] { center_crop_arr(thin, 256); }, "exceeds the image limits"); });
  expect_error([&] { pil_resize(thin, int64_t(1) << 25, 1, Resample::Bicubic); }, "exceeds the image limits");
  EXPECT_EQ(center_crop_arr(torch::zeros({40, 30, 3}, torch::kUInt8), 16).sizes().vec(), std::vector<int64_t>({16, 16, 3}));
}

// Zip entries sharing bytes (the "overlapping zip bomb") would let one stored block stand for
// thousands of storages, each copied when misaligned.
TEST_F(HostileTest, OverlappingZipEntriesAreRefused) {
  std::string zip;
  ZipWriter w(zip);
  w.add("a", "hello", 5);
  w.add("b", "world", 5);
  w.finish();
  EXPECT_EQ(ZipReader(MappedFile::from_memory("fine.zip", zip.data(), zip.size())).entries().size(), 2u);
  const size_t second = zip.find(std::string("PK\x01\x02", 4), zip.find(std::string("PK\x01\x02", 4)) + 4);
  ASSERT_NE(second, std::string::npos);
  for (int i = 0; i < 4; ++i) zip[second + 42 + i] = 0;  // its local header offset: the first entry's
  expect_error([&] { ZipReader(MappedFile::from_memory("overlap.zip", zip.data(), zip.size())); }, "overlap");
}

// The readers accept bytes in memory (the fuzz targets' entry points) exactly as files.
TEST_F(HostileTest, InMemoryEntryPointsMatchFiles) {
  StateDict sd;
  sd.set("a", torch::arange(6, torch::kFloat).reshape({2, 3}));
  write_safetensors(dir_ + "/m.safetensors", sd);
  write_torch_pt(dir_ + "/m.pt", sd);
  for (const char* name : {"m.safetensors", "m.pt"}) {
    const std::string bytes = read_text_file(dir_ + "/" + name);
    auto mem = MappedFile::from_memory(name, bytes.data(), bytes.size());
    const torch::Tensor t = std::string(name) == "m.pt" ? read_torch_pt(mem).get("a")->tensor : read_safetensors(mem).at("a");
    EXPECT_TRUE(torch::equal(t, sd.at("a"))) << name;
  }
  expect_error([&] { read_safetensors(MappedFile::from_memory("named.safetensors", "xx", 2)); }, "named.safetensors");
}

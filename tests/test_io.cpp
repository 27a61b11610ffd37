#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "error_testing.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/pickle.h"
#include "io/safetensors.h"
#include "io/torch_pt.h"
#include "io/zip.h"
#include "models/dit.h"
#include "models/registry.h"
#include "pt_builders.h"
#include "testing.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace sdit;

namespace {

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = "/tmp/sdit_io_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string write_bytes(const std::string& name, const std::string& bytes) const {
    std::ofstream f(path(name), std::ios::binary);
    f.write(bytes.data(), bytes.size());
    return path(name);
  }
  // A safetensors file from a raw header text and data bytes.
  std::string write_st(const std::string& name, const std::string& header, const std::string& data) const {
    std::string b(8, '\0');
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(uint64_t(header.size()) >> (8 * i));
    return write_bytes(name, b + header + data);
  }
  // A torch.save-style zip holding `pickle` as archive/data.pkl plus raw storages.
  std::string write_pt(const std::string& name, const std::string& pickle,
                       const std::vector<std::pair<std::string, std::string>>& storages = {}) const {
    AtomicFile out(path(name));
    ZipWriter zip(out);
    zip.add("archive/data.pkl", pickle.data(), pickle.size());
    for (const auto& [k, v] : storages) zip.add("archive/data/" + k, v.data(), v.size());
    zip.add("archive/version", "3\n", 2);
    zip.finish();
    out.commit();
    return path(name);
  }

  std::string dir_;
};

std::string slurp(const std::string& p) { return read_text_file(p); }

// Where the central directory starts, read from the end record of a small (non-zip64) archive.
size_t cd_offset(const std::string& zip) {
  const size_t eocd = zip.rfind(std::string("PK\x05\x06", 4));
  EXPECT_NE(eocd, std::string::npos);
  size_t off = 0;
  for (int i = 3; i >= 0; --i) off = (off << 8) | static_cast<uint8_t>(zip[eocd + 16 + i]);
  return off;
}

void expect_same(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.keys(), b.keys());
  for (const auto& k : a.keys()) {
    EXPECT_EQ(a.at(k).scalar_type(), b.at(k).scalar_type()) << k;
    EXPECT_TRUE(a.at(k).sizes().equals(b.at(k).sizes())) << k;
    EXPECT_TRUE(torch::equal(a.at(k), b.at(k))) << k;
  }
}

StateDict all_dtypes() {
  StateDict sd;
  torch::manual_seed(3);
  sd.set("f32", torch::randn({3, 5}));
  sd.set("f16", torch::randn({7}).to(torch::kHalf));
  sd.set("bf16", torch::randn({2, 3}).to(torch::kBFloat16));
  sd.set("f64", torch::randn({4, 1, 2}, torch::kDouble));
  sd.set("i64", torch::tensor({int64_t(1) << 40, int64_t(-5), int64_t(7)}));
  sd.set("i32", torch::tensor({-1, 2, 3}, torch::kInt));
  sd.set("i16", torch::tensor({-300, 2}, torch::kShort));
  sd.set("i8", torch::tensor({-7, 5, 1}, torch::kChar));
  sd.set("u8", torch::tensor({250, 1}, torch::kByte));
  sd.set("bool", torch::tensor({true, false, true}));
  sd.set("scalar", torch::tensor(2.5f));
  sd.set("empty", torch::zeros({0, 4}));
  sd.set("transposed", torch::arange(12, torch::kFloat).reshape({3, 4}).t());
  return sd;
}

}  // namespace

TEST_F(IoTest, SafetensorsRoundTripEveryDtype) {
  StateDict sd = all_dtypes();
  sd.metadata["format"] = "pt";
  sd.metadata["config"] = R"({"hidden_size": 64})";
  write_safetensors(path("a.safetensors"), sd);
  EXPECT_FALSE(fs::exists(path("a.safetensors.tmp." + std::to_string(::getpid()))));
  StateDict back = read_safetensors(path("a.safetensors"));
  expect_same(sd, back);
  EXPECT_EQ(back.metadata, sd.metadata);
  // Tensors alias a copy-on-write map: writing to them must neither crash nor change the file.
  back.at("f32").mul_(0);
  expect_same(sd, read_safetensors(path("a.safetensors")));
}

TEST_F(IoTest, GoldenSafetensorsAndPtAgree) {
  StateDict st = read_safetensors(golden("dit/dit.safetensors"));
  StateDict pt = load_checkpoint(golden("dit/dit.pt"));
  ASSERT_TRUE(st.metadata.count("config"));
  EXPECT_NE(st.metadata.at("config").find("\"hidden_size\": 64"), std::string::npos);
  EXPECT_EQ(st.size(), 8u + 4 * 10 + 4);  // embedders (with pos_embed), 4 blocks of 10, final layer
  expect_same(st, pt);
  EXPECT_TRUE(st.at("blocks.0.attn.qkv.weight").sizes().equals({192, 64}));

  StateDict dense_st = load_checkpoint(golden("sparsedit/dense_dit.safetensors"));
  StateDict dense_pt = load_checkpoint(golden("sparsedit/dense_dit.pt"));
  expect_same(dense_st, dense_pt);
}

TEST_F(IoTest, TrainCheckpointLoadsEmaAndArgs) {
  StateDict ema = load_checkpoint(golden("dit/dit_train_checkpoint.pt"));
  StateDict ref = load_checkpoint(golden("dit/dit.pt"));
  expect_same(ref, ema);
  ASSERT_TRUE(ema.metadata.count("args"));
  auto args = nlohmann::json::parse(ema.metadata.at("args"));
  EXPECT_EQ(args.at("image_size"), 64);
  EXPECT_EQ(args.at("num_classes"), 10);
  EXPECT_EQ(args.at("model"), "custom");

  // The raw tree: a dict whose "args" is an argparse.Namespace record and "model" differs from "ema".
  PyValue root = read_torch_pt(golden("dit/dit_train_checkpoint.pt"));
  ASSERT_TRUE(root.is_dict());
  ASSERT_NE(root.get("args"), nullptr);
  EXPECT_EQ(root.get("args")->type_name(), "argparse.Namespace");
  const PyValue* opt = root.get("opt");
  ASSERT_NE(opt, nullptr);
  const PyValue* groups = opt->get("param_groups");
  ASSERT_NE(groups, nullptr);
  ASSERT_EQ(groups->items.size(), 1u);
  EXPECT_DOUBLE_EQ(groups->items[0].get("lr")->f, 1e-4);
  const PyValue* model = root.get("model");
  ASSERT_NE(model, nullptr);
  EXPECT_FALSE(torch::equal(model->get("blocks.0.attn.qkv.weight")->tensor, ref.at("blocks.0.attn.qkv.weight")));
}

TEST_F(IoTest, WriteTorchPtRoundTripAndUnzip) {
  StateDict sd = all_dtypes();
  write_torch_pt(path("m.pt"), sd);
  PyValue root = read_torch_pt(path("m.pt"));
  ASSERT_TRUE(root.is_dict());
  EXPECT_TRUE(root.ordered);
  expect_same(sd, load_checkpoint(path("m.pt")));
  EXPECT_EQ(std::system(("unzip -tq '" + path("m.pt") + "' > /dev/null 2>&1").c_str()), 0);

  // save_checkpoint picks the format from the extension.
  StateDict golden_sd = read_safetensors(golden("dit/dit.safetensors"));
  save_checkpoint(path("g.pt"), golden_sd);
  save_checkpoint(path("g.safetensors"), golden_sd);
  expect_same(golden_sd, load_checkpoint(path("g.pt")));
  expect_same(golden_sd, load_checkpoint(path("g.safetensors")));
  expect_error([&] { save_checkpoint(path("g.bin"), golden_sd); }, "unknown extension");
}

TEST_F(IoTest, LegacyTorchSaveStreamIsRead) {
  StateDict sd;
  sd.set("conv.weight", torch::randn({4, 3, 3, 3}));
  sd.set("bn.running_var", torch::rand({4}));
  sd.set("fc.bias", torch::randn({7}));
  const std::string bytes = legacy_pt_bytes(sd);
  expect_same(sd, load_checkpoint(write_bytes("legacy.pth", bytes)));
  expect_same(sd, load_checkpoint(write_bytes("legacy.bin", bytes)));  // recognised by content too

  expect_error([&] { read_torch_pt(write_bytes("cut.pth", bytes.substr(0, bytes.size() - 9))); }, "truncated");
  expect_error([&] { read_torch_pt(write_bytes("cut2.pth", bytes.substr(0, 40))); }, "cannot unpickle");
  // A storage class outside the allow-list is refused by name, before any data is touched.
  const std::string evil = legacy_pt_bytes(sd, "os", "system");
  expect_error([&] { read_torch_pt(write_bytes("evil.pth", evil)); }, "os.system");
}

TEST_F(IoTest, Zip64RecordsAreReadAndValid) {
  const std::string p = path("z64.zip");
  {
    AtomicFile out(p);
    ZipWriter zip(out, /*force_zip64=*/true);
    zip.add("a/one", "hello", 5);
    zip.add("a/two", "", 0);
    zip.finish();
    out.commit();
  }
  EXPECT_EQ(std::system(("unzip -tq '" + p + "' > /dev/null 2>&1").c_str()), 0);
  ZipReader z(p);
  ASSERT_EQ(z.entries().size(), 2u);
  const ZipEntry* e = z.find("a/one");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(z.data_checked(*e)), e->size), "hello");
  EXPECT_EQ(e->data_offset % 64, 0u);
}

// An entry written in pieces (sample batches streamed into an .npz) is the entry add() writes: the
// CRC is filled in afterwards, in a file and in memory, and unzip and the reader check it.
TEST_F(IoTest, ZipEntriesStreamedInPiecesMatchWholeEntries) {
  const std::string text = "the quick brown fox jumps over the lazy dog";
  std::string whole, pieces;
  {
    ZipWriter zip(whole);
    zip.add("a", text.data(), text.size());
    zip.add("b", "xyz", 3);
    zip.finish();
  }
  {
    ZipWriter zip(pieces);
    zip.begin("a", text.size());
    for (size_t i = 0; i < text.size(); i += 5) zip.append(text.data() + i, std::min<size_t>(5, text.size() - i));
    zip.end();
    zip.add("b", "xyz", 3);
    zip.finish();
  }
  EXPECT_EQ(pieces, whole);
  const std::string p = path("streamed.zip");
  {
    AtomicFile out(p);
    ZipWriter zip(out, /*force_zip64=*/true);
    zip.begin("a", text.size());
    zip.append(text.data(), 10);
    zip.append(text.data() + 10, text.size() - 10);
    zip.end();
    zip.finish();
    out.commit();
  }
  EXPECT_EQ(std::system(("unzip -tq '" + p + "' > /dev/null 2>&1").c_str()), 0);
  ZipReader z(p);
  const ZipEntry* e = z.find("a");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(z.data_checked(*e)), e->size), text);
  // Too many or too few bytes, or an entry left open, are refused rather than written wrong.
  std::string bad;
  ZipWriter zip(bad);
  zip.begin("c", 4);
  expect_error([&] { zip.append("12345", 5); }, "declared 4 bytes");
  zip.append("12", 2);
  expect_error([&] { zip.end(); }, "got 2");
  expect_error([&] { zip.finish(); }, "inside entry 'c'");
}

TEST_F(IoTest, HostileSafetensors) {
  expect_error([&] { read_safetensors(write_bytes("empty.safetensors", "")); }, "too small");
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>((i * 7919 + 13) % 251));
  expect_error([&] { read_safetensors(write_bytes("garbage.safetensors", garbage)); }, "garbage.safetensors");
  expect_error([&] { read_safetensors(write_bytes("huge.safetensors", std::string("\0\0\0\0\0\0\0\x80{}", 10))); },
               "header length");
  expect_error([&] { read_safetensors(write_st("nojson.safetensors", "{\"a\": [1,", "")); }, "not valid JSON");
  expect_error([&] { read_safetensors(write_st("array.safetensors", "[1, 2]", "")); }, "not a JSON object");
  const std::string d16(16, '\0');
  expect_error([&] { read_safetensors(write_st("dt.safetensors", R"({"w":{"dtype":"F7","shape":[4],"data_offsets":[0,16]}})", d16)); },
               "unknown dtype 'F7'");
  expect_error([&] { read_safetensors(write_st("neg.safetensors", R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", d16)); },
               "negative");
  expect_error([&] { read_safetensors(write_st("ovf.safetensors", R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", d16)); },
               "overflow");
  expect_error([&] { read_safetensors(write_st("past.safetensors", R"({"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", d16)); },
               "past the end");
  expect_error([&] { read_safetensors(write_st("mis.safetensors", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", d16)); },
               "need 12");
  expect_error([&] { read_safetensors(write_st("rev.safetensors", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", d16)); },
               "begin > end");
  expect_error([&] {
    read_safetensors(write_st("lap.safetensors",
                              R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", d16));
  }, "overlaps");
  expect_error([&] { read_safetensors(write_st("meta.safetensors", R"({"__metadata__":{"k":1}})", "")); }, "not a string");

  // A real file cut at several points: always a clean error naming the file.
  const std::string full = slurp(golden("dit/dit.safetensors"));
  for (size_t cut : {size_t(3), size_t(8), size_t(200), size_t(4880), full.size() / 2, full.size() - 1}) {
    expect_error([&] { read_safetensors(write_bytes("cut.safetensors", full.substr(0, cut))); }, "cut.safetensors");
  }
}

TEST_F(IoTest, BadZipAndTruncatedPt) {
  const std::string pt = slurp(golden("dit/dit.pt"));
  for (size_t cut : {size_t(10), pt.size() / 2, pt.size() - 10}) {
    expect_error([&] { read_torch_pt(write_bytes("cut.pt", pt.substr(0, cut))); }, "cut.pt");
    expect_error([&] { load_checkpoint(path("cut.pt")); }, "cut.pt");
  }
  // Corrupt the central directory's offset (in the end record) and, separately, its signature.
  std::string bad = pt;
  const size_t eocd = bad.rfind(std::string("PK\x05\x06", 4));
  ASSERT_NE(eocd, std::string::npos);
  bad[eocd + 19] = '\x7f';
  expect_error([&] { read_torch_pt(write_bytes("badcd.pt", bad)); }, "central directory");
  // PyTorch also writes zip64 end records: a bad offset there is caught as well.
  const size_t rec64 = pt.rfind(std::string("PK\x06\x06", 4));
  ASSERT_NE(rec64, std::string::npos);
  bad = pt;
  bad[rec64 + 48 + 6] = '\x7f';
  expect_error([&] { read_torch_pt(write_bytes("badcd64.pt", bad)); }, "central directory");
  bad = pt;
  bad[cd_offset(bad) + 1] = 'X';
  expect_error([&] { read_torch_pt(write_bytes("badsig.pt", bad)); }, "bad signature");

  // Deflate entries are refused with a clear message (method patched in both headers).
  write_pt("deflate.pt", PickleWriter().proto(2).empty_dict().stop().bytes());
  std::string def = slurp(path("deflate.pt"));
  def[8] = 8;
  def[cd_offset(def) + 10] = 8;
  expect_error([&] { read_torch_pt(write_bytes("deflate.pt", def)); }, "compressed");

  expect_error([&] { load_checkpoint(write_bytes("legacy.pt", std::string("\x80\x02", 2) + "legacy pickle")); },
               "without torch.save's magic number");
  expect_error([&] { load_checkpoint(write_bytes("junk.bin", "hello world, not a checkpoint")); }, "not a recognised checkpoint");
  expect_error([&] { load_checkpoint(path("missing.pt")); }, "does not exist");
}

TEST_F(IoTest, PickleRefusesDangerousGlobals) {
  const std::string marker = "/tmp/sdit_io_pwned_" + std::to_string(::getpid());
  std::remove(marker.c_str());
  struct G {
    const char* module;
    const char* name;
  };
  for (G g : {G{"os", "system"}, G{"builtins", "eval"}, G{"posix", "system"}, G{"subprocess", "call"},
              G{"builtins", "getattr"}}) {
    const std::string full = std::string(g.module) + "." + g.name;
    PickleWriter w;
    w.proto(2).global(g.module, g.name).str("touch " + marker).tuple(1).reduce().stop();
    const std::string p = write_pt("evil.pt", w.bytes());
    expect_error([&] { read_torch_pt(p); }, "'" + full + "'");
    expect_error([&] { load_checkpoint(p); }, full);
    // Protocol 4 spelling: STACK_GLOBAL from two strings.
    PickleWriter w4;
    w4.proto(4).str(g.module).str(g.name).raw(0x93).str("touch " + marker).tuple(1).reduce().stop();
    expect_error([&] { read_torch_pt(write_pt("evil4.pt", w4.bytes())); }, full);
  }
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(IoTest, PickleStructuralErrors) {
  auto load = [&](const PickleWriter& w, std::vector<std::pair<std::string, std::string>> st = {}) {
    return read_torch_pt(write_pt("p.pt", w.bytes(), st));
  };
  expect_error([&] { load(PickleWriter().proto(2).reduce().stop()); }, "stack underflow");
  expect_error([&] { load(PickleWriter().proto(2).raw('h').raw(5).stop()); }, "memo index 5");
  expect_error([&] { load(PickleWriter().proto(2).raw(0xff)); }, "unknown pickle opcode 0xff");
  expect_error([&] { load(PickleWriter().proto(2).empty_dict()); }, "truncated");
  expect_error([&] { load(PickleWriter().proto(2).raw('X').raw(0xff).raw(0xff).raw(0xff).raw(0x7f)); }, "truncated");
  expect_error([&] { load(PickleWriter().proto(2).raw('u').stop()); }, "missing MARK");

  std::string bytes16(16, '\0');
  float vals[4] = {1, 2, 3, 4};
  std::memcpy(&bytes16[0], vals, 16);
  PyValue ok = load(tensor_pickle("0", 4, {2, 2}, {1, 2}), {{"0", bytes16}});
  ASSERT_TRUE(ok.get("w") && ok.get("w")->is_tensor());
  EXPECT_TRUE(torch::equal(ok.get("w")->tensor, torch::tensor({1.f, 3.f, 2.f, 4.f}).reshape({2, 2})));
  // Kept as saved, as torch.load keeps it: a view with the pickle's strides.
  EXPECT_EQ(ok.get("w")->tensor.strides().vec(), std::vector<int64_t>({1, 2}));

  expect_error([&] { load(tensor_pickle("7", 4, {2, 2}, {2, 1}), {{"0", bytes16}}); }, "storage '7'");
  expect_error([&] { load(tensor_pickle("0", 4, {3, 3}, {3, 1}), {{"0", bytes16}}); }, "beyond its storage");
  expect_error([&] { load(tensor_pickle("0", 4, {2, 2}, {4, 1}), {{"0", bytes16}}); }, "beyond its storage");
  expect_error([&] { load(tensor_pickle("0", 100, {2, 2}, {2, 1}), {{"0", bytes16}}); }, "holds 16 bytes");
  expect_error([&] { load(tensor_pickle("0", 4, {2, 2}, {-1, 1}), {{"0", bytes16}}); }, "negative");

  // A flat dict holding a non-tensor value: the error names the key.
  PickleWriter w;
  w.proto(2).empty_dict().mark().str("blocks.0.x").integer(3).setitems().stop();
  expect_error([&] { load_checkpoint(write_pt("nt.pt", w.bytes())); }, "'blocks.0.x' is a int, not a tensor");
  // A pickle whose data.pkl references no storage at all but is a list: not a state dict.
  PickleWriter l;
  l.proto(2).raw(']').integer(1).raw('a').stop();
  expect_error([&] { load_checkpoint(write_pt("list.pt", l.bytes())); }, "holds a list");
}

TEST_F(IoTest, SincosPosEmbedMatchesGolden) {
  StateDict fwd = read_safetensors(golden("dit/forward.safetensors"));
  const torch::Tensor& ref = fwd.at("pos_embed");
  torch::Tensor pe = sincos_pos_embed_2d(64, 4);
  ASSERT_TRUE(pe.sizes().equals(ref.sizes()));
  EXPECT_EQ(pe.scalar_type(), torch::kFloat);
  EXPECT_LT((pe - ref).abs().max().item<float>(), 1e-6);
  EXPECT_LT(rel_l2(pe, ref), 1e-6);
  expect_error([] { sincos_pos_embed_2d(66, 4); }, "divisible by 4");
}

TEST_F(IoTest, DiffusersFolderConvertsBack) {
  StateDict orig = read_safetensors(golden("dit/dit.safetensors"));
  StateDict d;
  const int depth = 4;
  d.set("pos_embed.proj.weight", orig.at("x_embedder.proj.weight"));
  d.set("pos_embed.proj.bias", orig.at("x_embedder.proj.bias"));
  for (int i = 0; i < depth; ++i) {
    const std::string o = "blocks." + std::to_string(i) + ".", b = "transformer_blocks." + std::to_string(i) + ".";
    for (std::string wb : {"weight", "bias"}) {
      d.set(b + "norm1.emb.timestep_embedder.linear_1." + wb, orig.at("t_embedder.mlp.0." + wb));
      d.set(b + "norm1.emb.timestep_embedder.linear_2." + wb, orig.at("t_embedder.mlp.2." + wb));
      auto qkv = orig.at(o + "attn.qkv." + wb).chunk(3, 0);
      d.set(b + "attn1.to_q." + wb, qkv[0].clone());
      d.set(b + "attn1.to_k." + wb, qkv[1].clone());
      d.set(b + "attn1.to_v." + wb, qkv[2].clone());
      d.set(b + "attn1.to_out.0." + wb, orig.at(o + "attn.proj." + wb));
      d.set(b + "ff.net.0.proj." + wb, orig.at(o + "mlp.fc1." + wb));
      d.set(b + "ff.net.2." + wb, orig.at(o + "mlp.fc2." + wb));
      d.set(b + "norm1.linear." + wb, orig.at(o + "adaLN_modulation.1." + wb));
    }
    d.set(b + "norm1.emb.class_embedder.embedding_table.weight", orig.at("y_embedder.embedding_table.weight"));
  }
  for (std::string wb : {"weight", "bias"}) {
    d.set("proj_out_1." + wb, orig.at("final_layer.adaLN_modulation.1." + wb));
    d.set("proj_out_2." + wb, orig.at("final_layer.linear." + wb));
  }
  ASSERT_TRUE(is_diffusers_dit(d));
  fs::create_directories(path("hub/transformer"));
  write_safetensors(path("hub/transformer/diffusion_pytorch_model.safetensors"), d);

  // io/ reads the folder; the DiT family recognises the layout and renames it (native_state_dict).
  // Without config.json the latent size is unknown: a clear error.
  expect_error([&] { native_state_dict(load_checkpoint(path("hub"))); }, "sample_size");

  std::ofstream(path("hub/transformer/config.json")) << R"({"sample_size": 8, "num_attention_heads": 4})";
  StateDict back = native_state_dict(load_checkpoint(path("hub")));
  EXPECT_EQ(back.metadata.at("source_format"), "diffusers");
  EXPECT_EQ(nlohmann::json::parse(back.metadata.at("config")).at("num_heads"), 4);
  ASSERT_EQ(back.size(), orig.size());
  for (const auto& k : orig.keys()) {
    ASSERT_TRUE(back.contains(k)) << k;
    if (k == "pos_embed") continue;
    EXPECT_TRUE(torch::equal(back.at(k), orig.at(k))) << k;
  }
  const torch::Tensor ref = read_safetensors(golden("dit/forward.safetensors")).at("pos_embed");
  EXPECT_LT((back.at("pos_embed") - ref).abs().max().item<float>(), 1e-6);

  // The weights file directly inside the folder is found as well.
  fs::rename(path("hub/transformer"), path("flat"));
  EXPECT_TRUE(torch::equal(native_state_dict(load_checkpoint(path("flat"))).at("blocks.3.attn.qkv.weight"),
                           orig.at("blocks.3.attn.qkv.weight")));

  // An extra tensor means the folder is not a DiT: refuse rather than drop it silently.
  d.set("transformer_blocks.0.attn2.to_q.weight", torch::zeros({2, 2}));
  write_safetensors(path("flat/diffusion_pytorch_model.safetensors"), d);
  expect_error([&] { native_state_dict(load_checkpoint(path("flat"))); }, "attn2.to_q.weight");
}

TEST_F(IoTest, FolderWithSafetensorsFiles) {
  StateDict sd = all_dtypes();
  fs::create_directories(path("one"));
  write_safetensors(path("one/model.safetensors"), sd);
  expect_same(sd, load_checkpoint(path("one")));
  write_safetensors(path("one/other.safetensors"), sd);
  expect_error([&] { load_checkpoint(path("one")); }, "2 .safetensors files");
  fs::create_directories(path("none"));
  expect_error([&] { load_checkpoint(path("none")); }, "holds no checkpoint");
}

TEST_F(IoTest, SafetensorsWhoseHeaderLengthStartsWith0x80IsNotMistakenForLegacyPickle) {
  std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  header.resize(128, ' ');  // length 0x80: the first byte of the file is 0x80, like a pickle
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(0x80);
  const float one = 1.0f;
  bytes += header + std::string(reinterpret_cast<const char*>(&one), 4);
  auto sd = load_checkpoint(write_bytes("len128.safetensors", bytes));
  ASSERT_TRUE(sd.contains("a"));
  EXPECT_EQ(sd.at("a").item<float>(), 1.0f);
}

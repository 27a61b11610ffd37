// Loading T5 checkpoints: hostile sharded indexes and shards refused clearly, wrong shapes named,
// fp32 shards loaded as bf16 within about the bf16 model's memory, and `sparsedit encode-text`
// end to end on the golden folders.
#include <gtest/gtest.h>
#include <malloc.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "error_testing.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "io/sharded.h"
#include "io/torch_pt.h"
#include "io/weight_files.h"
#include "models/t5.h"
#include "models/t5_load.h"
#include "testing.h"
#include "util/error.h"
#include "util/memory.h"

namespace fs = std::filesystem;
using namespace sdit;
using json = nlohmann::ordered_json;

namespace {

class T5Loading : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = fs::temp_directory_path() / ("sdit_t5_load_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A folder with the golden config.json and the given tensors split over `shards` safetensors files.
  std::string write_sharded(const std::string& name, const StateDict& sd, int shards,
                            const std::string& config = golden("t5/t5_full_safetensors_sharded/config.json"),
                            bool torch_bin = false) {
    const fs::path d = dir_ / name;
    fs::create_directories(d);
    fs::copy_file(config, d / "config.json");
    json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
    std::vector<StateDict> parts(shards);
    for (size_t i = 0; i < sd.keys().size(); ++i) {
      const auto& k = sd.keys()[i];
      parts[i % shards].set(k, sd.at(k));
    }
    for (int s = 0; s < shards; ++s) {
      char file[64];
      std::snprintf(file, sizeof file, torch_bin ? "pytorch_model-%05d-of-%05d.bin" : "model-%05d-of-%05d.safetensors",
                    s + 1, shards);
      if (torch_bin) write_torch_pt((d / file).string(), parts[s]);
      else write_safetensors((d / file).string(), parts[s]);
      for (const auto& k : parts[s].keys()) index["weight_map"][k] = file;
    }
    std::ofstream(d / (torch_bin ? "pytorch_model.bin.index.json" : "model.safetensors.index.json")) << index.dump(2);
    return d.string();
  }
  std::string write_index(const std::string& name, const std::string& text) {
    const fs::path d = dir_ / name;
    fs::create_directories(d);
    fs::copy_file(golden("t5/t5_full_safetensors_sharded/config.json"), d / "config.json");
    std::ofstream(d / "model.safetensors.index.json") << text;
    return d.string();
  }
  static StateDict golden_encoder() {
    StateDict sd;
    for (const auto& f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
      const StateDict part = read_safetensors(golden(std::string("t5/t5_full_safetensors_sharded/") + f));
      for (const auto& k : part.keys())
        if (k.rfind("decoder.", 0) != 0 && k != "lm_head.weight") sd.set(k, part.at(k).clone());
    }
    return sd;
  }
  fs::path dir_;
};

#define EXPECT_ERROR(expr, ...)                                                   \
  do {                                                                            \
    const std::string msg = error_of([&] { (void)(expr); });                      \
    for (const char* want : {__VA_ARGS__}) EXPECT_NE(msg.find(want), std::string::npos) << msg; \
  } while (0)

}  // namespace

TEST_F(T5Loading, ShardedIndexHostileCases) {
  const StateDict sd = golden_encoder();
  const std::string ok = write_sharded("ok", sd, 3);
  EXPECT_NO_THROW(load_t5_encoder(ok));
  const std::string k = "encoder.final_layer_norm.weight";
  auto index_with = [&](const std::string& shard) {
    return "{\"weight_map\": {\"" + k + "\": \"" + shard + "\"}}";
  };
  EXPECT_ERROR(load_t5_encoder(write_index("missing", index_with("model-00009-of-00009.safetensors"))),
               "does not exist", k.c_str());
  EXPECT_ERROR(load_t5_encoder(write_index("outside", index_with("../ok/model-00001-of-00003.safetensors"))),
               "outside the checkpoint folder");
  EXPECT_ERROR(load_t5_encoder(write_index("absolute", index_with("/etc/passwd"))), "absolute path");
  EXPECT_ERROR(load_t5_encoder(write_index("backslash", index_with("..\\\\x.safetensors"))), "backslash");
  EXPECT_ERROR(load_t5_encoder(write_index("dup", "{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"y.safetensors\"}}")),
               "appears twice");
  EXPECT_ERROR(load_t5_encoder(write_index("nomap", "{\"metadata\": {}}")), "weight_map");
  EXPECT_ERROR(load_t5_encoder(write_index("notjson", "{\"weight_map\": ")), "not valid JSON");
  EXPECT_ERROR(load_t5_encoder(write_index("badval", "{\"weight_map\": {\"a\": 3}}")), "not a file name");
  EXPECT_ERROR(load_t5_encoder(write_index("dotdot", index_with("sub/../../x.safetensors"))), "outside");
  // Shards that are symbolic links are fine: HF's hub cache keeps every snapshot file as a link into
  // blobs/. This folder links the three shards of `ok` and copies its index.
  const fs::path link = dir_ / "link";
  fs::create_directories(link);
  fs::copy_file(fs::path(ok) / "config.json", link / "config.json");
  fs::copy_file(fs::path(ok) / "model.safetensors.index.json", link / "model.safetensors.index.json");
  for (int i = 1; i <= 3; ++i) {
    const std::string f = "model-0000" + std::to_string(i) + "-of-00003.safetensors";
    fs::create_symlink(fs::path(ok) / f, link / f);
  }
  EXPECT_NO_THROW(load_t5_encoder(link.string()));
  EXPECT_ERROR(load_t5_encoder(write_index("dir", index_with("."))), "not a plain relative path");
  // A name the index maps to a shard that lacks it.
  const std::string lying = write_sharded("lying", sd, 2);
  {
    auto idx = json::parse(read_text_file(lying + "/model.safetensors.index.json"));
    idx["weight_map"]["encoder.extra.weight"] = "model-00001-of-00002.safetensors";
    std::ofstream(lying + "/model.safetensors.index.json") << idx.dump();
  }
  EXPECT_ERROR(load_t5_encoder(lying), "encoder.extra.weight", "does not contain it");
  // The same tensor stored in two shards.
  const std::string twice = write_sharded("twice", sd, 2);
  for (const char* f : {"/model-00001-of-00002.safetensors", "/model-00002-of-00002.safetensors"}) {
    StateDict part = read_safetensors(twice + f);
    if (part.contains(k)) continue;
    part.set(k, sd.at(k).clone());
    write_safetensors(twice + f, part);
    break;
  }
  EXPECT_ERROR(load_t5_encoder(twice), "stored twice", k.c_str());
}

TEST_F(T5Loading, ShapesMissingAndUnexpectedTensorsAreNamed) {
  StateDict sd = golden_encoder();
  const std::string q = "encoder.block.1.layer.0.SelfAttention.q.weight";
  StateDict bad = sd;
  bad.set(q, torch::zeros({64, 63}));
  EXPECT_ERROR(load_t5_encoder(write_sharded("shape", bad, 2)), q.c_str(), "[64, 63]", "[64, 64]");
  StateDict missing = sd;
  missing.erase("encoder.block.2.layer.1.DenseReluDense.wo.weight");
  EXPECT_ERROR(load_t5_encoder(write_sharded("missing", missing, 2)), "missing keys",
               "encoder.block.2.layer.1.DenseReluDense.wo.weight");
  StateDict extra = sd;
  extra.set("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight", torch::zeros({32, 4}));
  EXPECT_ERROR(load_t5_encoder(write_sharded("extra", extra, 2)), "unexpected keys", "block.1");
  StateDict ints = sd;
  ints.set("encoder.final_layer_norm.weight", torch::zeros({64}, torch::kLong));
  EXPECT_ERROR(load_t5_encoder(write_sharded("ints", ints, 1)), "not a floating-point weight");
  EXPECT_ERROR(find_weight_files(dir_.string()), "no weights", "model.safetensors");
  EXPECT_ERROR(parse_sharded_index("{\"weight_map\": {}}", "idx"), "empty");
}

// The memory bound of the XXL path at test size: fp32 shards loaded as bf16 tensor by tensor from the
// map; the peak grows by about the bf16 model, far below the fp32 files it reads.
TEST_F(T5Loading, Fp32ShardsLoadAsBf16WithinTheBf16Footprint) {
  T5Config c;
  c.vocab_size = 4096;
  c.d_model = 1024;
  c.d_kv = 64;
  c.num_heads = 16;
  c.d_ff = 2816;
  c.num_layers = 4;
  StateDict sd;
  {
    T5EncoderModel m(c);
    t5_fill_random(m, 7);
    for (auto& p : m->named_parameters()) sd.set(p.key(), p.value());
  }
  const fs::path cfg = dir_ / "config.json";
  std::ofstream(cfg) << "{\"vocab_size\": 4096, \"d_model\": 1024, \"d_kv\": 64, \"num_heads\": 16, \"d_ff\": 2816,"
                        " \"num_layers\": 4, \"feed_forward_proj\": \"gated-gelu\"}";
  // Both layouts: safetensors shards (PixArt's text_encoder/) and torch.save .bin shards (DeepFloyd's),
  // the latter read through the restricted unpickler with tensors aliasing the map.
  const std::string st = write_sharded("big_st", sd, 3, cfg.string());
  const std::string bin = write_sharded("big_bin", sd, 2, cfg.string(), /*torch_bin=*/true);
  const int64_t fp32_bytes = sd.numel() * 4;
  const torch::Tensor probe = sd.at("encoder.block.3.layer.1.DenseReluDense.wo.weight").to(torch::kBFloat16);
  sd = StateDict();
  for (const auto& folder : {st, bin}) {
    ::malloc_trim(0);  // freed heap pages of the previous round would otherwise hide this one's growth
    if (!reset_process_peak_rss()) GTEST_SKIP() << "/proc/self/clear_refs is not writable here";
    const int64_t before = process_rss_bytes();
    T5LoadOptions o;
    o.dtype = torch::kBFloat16;
    auto m = load_t5_encoder(folder, o);
    const int64_t growth = process_peak_rss_bytes() - before;
    std::printf("%s: fp32 files %.0f MB, bf16 model %.0f MB, peak RSS growth while loading %.0f MB\n", folder.c_str(),
                fp32_bytes / 1e6, fp32_bytes / 2e6, growth / 1e6);
    EXPECT_LT(growth, fp32_bytes * 0.7);  // bf16 model (0.5) + one tensor's pages, not the file
    EXPECT_EQ(m->dtype(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(m->blocks[3]->ff->wo->weight, probe));
  }
}

TEST_F(T5Loading, EncodeTextCliEndToEnd) {
  const StateDict g = read_safetensors(golden("t5/encoder.safetensors"));
  const auto tok = json::parse(read_text_file(golden("t5/tokenize.json")));
  json prompts = json::array();
  for (const char* name : {"plain", "empty", "punct", "long"})
    for (const auto& c : tok["cases"])
      if (c["name"] == name) prompts.push_back(c["text"]);
  const std::string pf = (dir_ / "prompts.json").string();
  std::ofstream(pf) << prompts.dump();
  // A diffusers pipeline folder: text_encoder/ and tokenizer/ found from --text-encoder alone.
  fs::create_directories(dir_ / "pipe");
  fs::create_directory_symlink(golden("t5/t5_encoder_bin_sharded"), dir_ / "pipe/text_encoder");
  fs::create_directory_symlink(golden("t5/tokenizer"), dir_ / "pipe/tokenizer");
  // DeepFloyd's layout: weights and spiece.model in one folder (here: links to the golden files).
  fs::create_directories(dir_ / "deepfloyd");
  for (const auto& dir : {golden("t5/t5_encoder_bin_sharded"), golden("t5/tokenizer")})
    for (const auto& e : fs::directory_iterator(dir)) fs::create_symlink(e.path(), dir_ / "deepfloyd" / e.path().filename());
  for (const std::string& te : {golden("t5/t5_full_safetensors_sharded") + " --tokenizer " + golden("t5/tokenizer"),
                                (dir_ / "pipe").string(), (dir_ / "deepfloyd").string()}) {
    const std::string out = (dir_ / "out.safetensors").string();
    const auto r = run_cli("encode-text -q --text-encoder " + te + " --prompts-file " + pf + " --save " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    const StateDict o = read_safetensors(out);
    EXPECT_TRUE(torch::equal(o.at("input_ids"), g.at("pixart_input_ids")));
    EXPECT_TRUE(torch::equal(o.at("attention_mask"), g.at("pixart_attention_mask")));
    EXPECT_EQ(o.at("last_hidden_state").scalar_type(), torch::kFloat);
    EXPECT_LE(rel_l2(o.at("last_hidden_state"), g.at("pixart_last_hidden_state")), 1e-5);
  }
  // bf16, prompts as lines, --prompt repeated.
  const std::string lines = (dir_ / "prompts.txt").string();
  {
    std::ofstream f(lines);
    for (const auto& p : prompts) f << p.get<std::string>() << "\n";
  }
  const std::string out = (dir_ / "bf16.safetensors").string();
  auto r = run_cli("encode-text -q --dtype bf16 --text-encoder " + golden("t5/t5_encoder_bf16") + " --tokenizer " +
                   golden("t5/tokenizer") + " --prompts-file " + lines + " --save " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_LE(rel_l2(read_safetensors(out).at("last_hidden_state"), g.at("pixart_last_hidden_state_bf16")), 5e-3);
  r = run_cli("encode-text -q --text-encoder " + golden("t5/t5_full_bin") + " --tokenizer " + golden("t5/tokenizer") +
              " --prompt 'a cat' --prompt '' --max-length 7 --clean-caption none --save " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  const StateDict o = read_safetensors(out);
  EXPECT_EQ(o.at("last_hidden_state").sizes(), (std::vector<int64_t>{2, 7, 64}));
  EXPECT_EQ(o.at("attention_mask")[1].sum().item<int64_t>(), 1);  // "" -> [EOS]
}

TEST_F(T5Loading, EncodeTextCliErrors) {
  const std::string te = " --text-encoder " + golden("t5/t5_full_bin") + " --tokenizer " + golden("t5/tokenizer");
  const std::string out = " --save " + (dir_ / "x.safetensors").string();
  auto r = run_cli("encode-text" + te + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("--prompt"), std::string::npos) << r.output;
  r = run_cli("encode-text --prompt a --clean-caption fancy" + te + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("caption cleaning"), std::string::npos) << r.output;
  r = run_cli("encode-text --prompt a --text-encoder " + dir_.string() + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
  std::ofstream(dir_ / "bad.json") << "{\"not\": \"a list\"}";
  r = run_cli("encode-text --prompts-file " + (dir_ / "bad.json").string() + te + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("JSON array"), std::string::npos) << r.output;
  r = run_cli("encode-text --prompt \"$(printf 'bad \\377')\"" + te + out);  // invalid UTF-8 (sh has no $'')
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("UTF-8"), std::string::npos) << r.output;
}

// Not a regular test: writes a full-size random T5-XXL encoder as PixArt's text_encoder/ ships it
// (fp32, two safetensors shards of <= 10 GB + model.safetensors.index.json + config.json) for the
// memory measurement in docs/t5-usage.md. Tensors are streamed to disk one at a time, so writing
// costs one tensor of memory. Run:
//   SPARSEDIT_T5_SYNTH_DIR=/tmp/t5xxl [SPARSEDIT_T5_SYNTH_LAYERS=24]
//     build/test_t5_loading --gtest_also_run_disabled_tests --gtest_filter='*WriteSyntheticXxl*'
TEST(T5Synthetic, DISABLED_WriteSyntheticXxlCheckpoint) {
  const char* dir = std::getenv("SPARSEDIT_T5_SYNTH_DIR");
  if (!dir || !*dir) GTEST_SKIP() << "set SPARSEDIT_T5_SYNTH_DIR";
  T5Config c = T5Config::v1_1_xxl();
  if (const char* l = std::getenv("SPARSEDIT_T5_SYNTH_LAYERS")) c.num_layers = std::atoll(l);
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "config.json")
      << "{\"architectures\": [\"T5EncoderModel\"], \"d_ff\": 10240, \"d_kv\": 64, \"d_model\": 4096, "
         "\"feed_forward_proj\": \"gated-gelu\", \"layer_norm_epsilon\": 1e-06, \"model_type\": \"t5\", "
         "\"num_heads\": 64, \"num_layers\": "
      << c.num_layers << ", \"relative_attention_max_distance\": 128, \"relative_attention_num_buckets\": 32, "
                         "\"torch_dtype\": \"float32\", \"vocab_size\": 32128}";
  // Names and shapes in state-dict order, from the module itself (no memory: parameters are empty).
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  {
    T5EncoderModel shapes(c);
    for (auto& p : shapes->named_parameters()) tensors.emplace_back(p.key(), p.value().sizes().vec());
  }
  auto bytes_of = [](const std::vector<int64_t>& s) {
    int64_t n = 4;
    for (auto d : s) n *= d;
    return n;
  };
  std::vector<std::vector<size_t>> shards(1);  // save_pretrained: fill a shard up to max_shard_size="10GB"
  int64_t in_shard = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t b = bytes_of(tensors[i].second);
    if (in_shard > 0 && in_shard + b > 10'000'000'000) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += b;
  }
  auto gen = at::detail::createCPUGenerator(0);
  const torch::Tensor block = torch::randn({1 << 20}, gen);
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  int64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    json header = {{"__metadata__", {{"format", "pt"}}}};
    int64_t off = 0;
    for (size_t i : shards[s]) {
      const int64_t b = bytes_of(tensors[i].second);
      header[tensors[i].first] = {{"dtype", "F32"}, {"shape", tensors[i].second}, {"data_offsets", {off, off + b}}};
      off += b;
      index["weight_map"][tensors[i].first] = name;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    AtomicFile out((fs::path(dir) / name).string());
    const uint64_t hlen = text.size();
    out.write(&hlen, 8);
    out.write(text.data(), text.size());
    for (size_t i : shards[s]) {  // one tensor at a time: N(0, 1/fan_in) tiled from the block; norms 1
      const auto& shape = tensors[i].second;
      torch::Tensor t = shape.size() == 1 ? torch::ones(shape)
                                          : (block * (1.0 / std::sqrt(static_cast<double>(shape[1]))))
                                                .repeat({(bytes_of(shape) / 4 + block.numel() - 1) / block.numel()})
                                                .narrow(0, 0, bytes_of(shape) / 4)
                                                .contiguous();
      out.write(t.data_ptr(), t.nbytes());
    }
    out.commit();
    total += off;
    std::printf("wrote %s: %.2f GB\n", name, off / 1e9);
  }
  index["metadata"]["total_size"] = total;
  std::ofstream(fs::path(dir) / "model.safetensors.index.json") << index.dump(2);
  std::printf("%lld parameters, %.2f GB fp32 in %zu shards\n", static_cast<long long>(total / 4), total / 1e9,
              shards.size());
}

// `bench --model t5-*`: the text-encoder rows (here a 1-layer t5-v1_1-small, bf16 then fp32).
TEST_F(T5Loading, BenchTextEncoderRows) {
  const auto r = run_cli("bench -q --model t5-v1_1-small --random-weights --depth 1 --reps 1 --warmup 0 --threads 1 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = json::parse(r.output);
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][0]["dtype"], "bf16");
  EXPECT_EQ(j["rows"][1]["dtype"], "fp32");
  for (const auto& row : j["rows"]) {
    EXPECT_EQ(row["batch"], 2);  // prompt + negative prompt
    EXPECT_EQ(row["tokens"], 120);
    EXPECT_GT(row["s_per_encode"].get<double>(), 0.0);
    EXPECT_GT(row["peak_rss_bytes"].get<int64_t>(), 0);
  }
  auto bad = run_cli("bench --model t5-v1_1-xxl --dtype fp16 --random-weights");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("fp16"), std::string::npos) << bad.output;
  bad = run_cli("bench --model t5-v1_1-huge --random-weights");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("unknown text encoder"), std::string::npos) << bad.output;
}

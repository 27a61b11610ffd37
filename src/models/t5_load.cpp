#include "models/t5_load.h"

#include <filesystem>
#include <map>
#include <set>

#include "io/file_util.h"
#include "io/weight_files.h"
#include "models/load.h"
#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;

constexpr const char* kEmbed = "shared.weight";
constexpr const char* kEmbedAlias = "encoder.embed_tokens.weight";  // the same tensor in HF (tied)

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// What the decoder half of T5ForConditionalGeneration holds; an encoder load ignores it, as HF does.
bool is_decoder_key(const std::string& k) { return starts_with(k, "decoder.") || starts_with(k, "lm_head."); }

}  // namespace

torch::Dtype parse_t5_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16")
    fail("dtype fp16 is not offered for T5: v1.1 overflows in fp16 (HF keeps every wo in fp32 and clamps); use bf16 "
         "or fp32");
  fail("invalid dtype '", name, "': use fp32 or bf16");
}

T5Config read_t5_config(const std::string& folder) {
  const std::string path = (fs::path(folder) / "config.json").string();
  if (!is_regular_file(path)) fail("T5 text encoder '", folder, "' has no config.json");
  return T5Config::from_json(read_text_file(path), "'" + path + "'");
}

T5EncoderModel load_t5_encoder(const std::string& folder, const T5LoadOptions& opt, T5LoadInfo* info_out) {
  const T5Config config = read_t5_config(folder);
  const WeightFiles files = find_weight_files(folder);
  T5LoadInfo info;
  info.weights = files.index ? files.index_path : files.files.front();

  // Parameters are allocated (uninitialised) once, in the target dtype on the CPU; every file
  // tensor is converted into its parameter as it is read and its mapped pages released.
  T5EncoderModel model(config, torch::TensorOptions().dtype(opt.dtype));
  std::map<std::string, torch::Tensor> params;
  for (auto& p : model->named_parameters()) params.emplace(p.key(), p.value());

  LoadReport report;
  std::set<std::string> loaded;
  torch::NoGradGuard ng;
  visit_weight_tensors(files, [&](const std::string& name, const torch::Tensor& t) {
    if (is_decoder_key(name)) {
      ++info.ignored_decoder;
      return;
    }
    std::string key = name;
    if (name == kEmbedAlias) {
      key = kEmbed;
      info.embed_from_alias = true;
    } else if (name == kEmbed && info.embed_from_alias) {
      return;  // encoder.embed_tokens.weight came first and wins (HF ties the two)
    }
    auto it = params.find(key);
    if (it == params.end()) {
      report.unexpected.push_back(name);
      return;
    }
    if (!t.sizes().equals(it->second.sizes()))
      fail("T5 checkpoint '", info.weights, "': tensor '", name, "' has shape ", shape_str(t.sizes().vec()),
           " but config.json (", folder, ") implies ", shape_str(it->second.sizes().vec()));
    if (!t.is_floating_point())
      fail("T5 checkpoint '", info.weights, "': tensor '", name, "' is ", c10::toString(t.scalar_type()),
           ", not a floating-point weight");
    it->second.copy_(t);  // converts (e.g. fp32 -> bf16, round to nearest even, as torch's .to)
    if (loaded.insert(key).second) ++info.tensors_loaded;
  });
  for (const auto& [name, t] : params)
    if (!loaded.count(name)) report.missing.push_back(name == kEmbed ? std::string(kEmbed) + " (or " + kEmbedAlias + ")" : name);
  if (!report.ok()) fail("T5 checkpoint '", info.weights, "' does not fit config.json of '", folder, "':", report.str());
  if (info.ignored_decoder > 0 && opt.log)
    opt.log("ignored " + std::to_string(info.ignored_decoder) +
            " decoder/lm_head tensors (a full T5 checkpoint; the encoder is all that is used)");
  if (opt.device != torch::kCPU) model->to(opt.device);
  if (info_out) *info_out = info;
  return model;
}

}  // namespace sdit

// sparsedit encode-text: prompts -> T5 features (input_ids, attention_mask, last_hidden_state) in a
// safetensors file, exactly as PixArt-α's pipeline feeds its transformer.
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "conditioning/t5_conditioner.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/memory.h"

namespace sdit::cli {
namespace {

struct EncodeTextArgs {
  std::string text_encoder, tokenizer, prompts_file, save, clean = "basic", dtype = "fp32", device = "cpu";
  std::vector<std::string> prompts;
  int64_t max_length = 120, batch_size = 8;
  int threads = 0;
  bool quiet = false;
};

// A .json file is a JSON array of strings; anything else has one prompt per line (an empty line
// is the empty prompt; the newline ending the last line does not start another).
std::vector<std::string> read_prompts_file(const std::string& path) {
  if (!is_regular_file(path)) fail("--prompts-file '", path, "' is not a readable file");
  const std::string text = read_text_file(path);
  std::vector<std::string> out;
  if (std::filesystem::path(path).extension() == ".json") {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("--prompts-file '", path, "' is not valid JSON (", e.what(), ")");
    }
    if (!j.is_array()) fail("--prompts-file '", path, "' must hold a JSON array of strings");
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_string()) fail("--prompts-file '", path, "': entry ", i, " is a ", j[i].type_name(), ", not a string");
      out.push_back(j[i].get<std::string>());
    }
    return out;
  }
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    out.push_back(line);
  }
  return out;
}

std::string gib(int64_t bytes) {
  std::ostringstream os;
  os.precision(2);
  os << std::fixed << static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0) << " GiB";
  return os.str();
}

void run_encode_text(const EncodeTextArgs& a) {
  set_threads(a.threads);
  if (a.prompts.empty() == a.prompts_file.empty()) fail("encode-text: give --prompt TEXT (repeatable) or --prompts-file FILE");
  if (a.max_length < 1) fail("encode-text: --max-length must be at least 1, got ", a.max_length);
  if (a.batch_size < 1) fail("encode-text: --batch-size must be at least 1, got ", a.batch_size);
  const CaptionCleaning cleaning = parse_caption_cleaning(a.clean);
  std::vector<std::string> prompts = a.prompts.empty() ? read_prompts_file(a.prompts_file) : a.prompts;
  if (prompts.empty()) fail("encode-text: '", a.prompts_file, "' holds no prompts");
  Log log(a.quiet);

  T5LoadOptions opt;
  opt.dtype = parse_t5_dtype(a.dtype);
  opt.device = parse_device(a.device);
  opt.log = [&](const std::string& m) { log.info(m); };
  T5Conditioner t5(a.text_encoder, a.tokenizer, opt);
  const T5Config& c = t5.encoder()->config();
  log.stage("loaded T5 encoder " + t5.paths().text_encoder + " (" + std::to_string(c.num_layers) + " layers, d_model " +
            std::to_string(c.d_model) + ", " + a.dtype + ", " + t5.load_info().weights + ") and tokenizer " +
            t5.paths().tokenizer);

  ProgressBar bar("encoding", static_cast<int64_t>(prompts.size()), a.quiet);
  TextEncoding e = t5.encode(prompts, a.max_length, cleaning, a.batch_size,
                             [&](int64_t done, int64_t) { bar.update(done); });
  bar.finish();
  log.stage("encoded " + std::to_string(prompts.size()) + " prompt(s) at " + std::to_string(a.max_length) +
            " tokens, caption cleaning " + caption_cleaning_name(cleaning));

  StateDict sd;
  sd.set("input_ids", e.input_ids);
  sd.set("attention_mask", e.attention_mask);
  sd.set("last_hidden_state", e.last_hidden_state);
  sd.metadata["caption_cleaning"] = caption_cleaning_name(cleaning);
  sd.metadata["dtype"] = a.dtype;
  sd.metadata["max_length"] = std::to_string(a.max_length);
  sd.metadata["text_encoder"] = t5.paths().text_encoder;
  write_safetensors(a.save, sd);
  const int64_t peak = process_peak_rss_bytes();
  log.stage("wrote " + a.save + (peak > 0 ? " (peak memory " + gib(peak) + ")" : ""));
}

}  // namespace

void register_encode_text(CLI::App& app) {
  auto a = std::make_shared<EncodeTextArgs>();
  auto* c = app.add_subcommand("encode-text", "Encode prompts with a T5 text encoder (PixArt-α's caption features)");
  c->add_option("--text-encoder", a->text_encoder,
                "T5 folder (config.json + model.safetensors / sharded index / pytorch_model.bin) or a diffusers "
                "pipeline folder holding text_encoder/ and tokenizer/")
      ->required();
  c->add_option("--tokenizer", a->tokenizer, "Folder with spiece.model (default: the pipeline's tokenizer/)");
  c->add_option("--prompt", a->prompts, "A prompt (repeatable)");
  c->add_option("--prompts-file", a->prompts_file, "A .json array of strings, or one prompt per line");
  c->add_option("--max-length", a->max_length, "Tokens per prompt (padded / truncated, EOS kept)")->capture_default_str();
  c->add_option("--clean-caption", a->clean,
                "none | basic (lower().strip(), diffusers' clean_caption=False) | full (_clean_caption, approximate)")
      ->capture_default_str();
  c->add_option("--dtype", a->dtype, "fp32 | bf16 (weights and activations; the output is float32)")
      ->capture_default_str();
  c->add_option("--batch-size", a->batch_size, "Prompts per encoder forward")->capture_default_str();
  c->add_option("--device", a->device, "cpu | cuda | cuda:N")->capture_default_str();
  c->add_option("--save", a->save, "Output .safetensors: input_ids, attention_mask (I64), last_hidden_state (F32)")
      ->required();
  c->add_option("-t,--threads", a->threads, "CPU threads (default: libtorch's)");
  c->add_flag("-q,--quiet", a->quiet, "Print nothing but errors");
  c->callback([a] { run_encode_text(*a); });
}

}  // namespace sdit::cli

#include "data/caption_index.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "io/file_util.h"
#include "util/error.h"

namespace sdit {

namespace fs = std::filesystem;

namespace {

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* e : {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
    if (ext == e) return true;
  return false;
}

// A caption file's text without its trailing newline(s) and carriage returns.
std::string caption_text(const std::string& path) {
  std::string t = read_text_file(path);
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t;
}

}  // namespace

CaptionedImages scan_captioned_folder(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) fail("image folder '", root, "' does not exist or is not a folder");
  std::vector<fs::path> images;
  auto it = fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (!it->is_directory(ec) && is_image(it->path())) images.push_back(it->path());
  if (ec) fail("cannot list '", root, "': ", ec.message());
  std::sort(images.begin(), images.end());
  CaptionedImages out;
  for (const auto& p : images) {
    const fs::path txt = fs::path(p).replace_extension(".txt");
    if (!is_regular_file(txt.string())) {
      ++out.skipped;
      continue;
    }
    out.files.push_back(p.string());
    out.captions.push_back(caption_text(txt.string()));
  }
  if (out.files.empty())
    fail("image folder '", root, "' holds no captioned image (an image with a <name>.txt caption beside it)");
  return out;
}

CaptionedImages parse_caption_jsonl(const std::string& text, const std::string& base_dir, const std::string& source) {
  CaptionedImages out;
  std::istringstream in(text);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(source, ":", n, ": not valid JSON (", e.what(), ")");
    }
    if (!j.is_object() || !j.contains("image") || !j.contains("caption") || !j["image"].is_string() ||
        !j["caption"].is_string())
      fail(source, ":", n, ": expected an object with string fields \"image\" and \"caption\"");
    const std::string image = j["image"].get<std::string>();
    if (image.empty()) fail(source, ":", n, ": empty image path");
    out.files.push_back(fs::path(image).is_absolute() ? image : (fs::path(base_dir) / image).string());
    out.captions.push_back(j["caption"].get<std::string>());
  }
  if (out.files.empty()) fail(source, " holds no image/caption pairs");
  return out;
}

CaptionedImages read_caption_jsonl(const std::string& path) {
  if (!is_regular_file(path)) fail("caption file '", path, "' does not exist");
  return parse_caption_jsonl(read_text_file(path), fs::path(path).parent_path().string(), path);
}

}  // namespace sdit

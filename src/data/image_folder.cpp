#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <utility>

#include "util/error.h"

namespace sdit {

namespace fs = std::filesystem;

namespace {

// torchvision's IMG_EXTENSIONS. Formats we cannot decode still count as images here, so that
// they fail loudly at decode time instead of silently changing the dataset.
bool has_image_extension(const std::string& name) {
  static const char* exts[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* e : exts) {
    const std::string ext(e);
    if (lower.size() >= ext.size() && lower.compare(lower.size() - ext.size(), ext.size(), ext) == 0) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> class_folders(const std::string& root, const std::string& what, const std::string& layout) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) fail(what, " '", root, "' does not exist or is not a folder");
  std::vector<std::string> classes = sorted_entries(root, [](const fs::directory_entry& e) {
    std::error_code e_ec;
    return e.is_directory(e_ec);
  });
  if (classes.empty()) fail(what, " '", root, "' has no class sub-folders (expected ", layout, ")");
  for (auto& c : classes) c = fs::path(c).filename().string();  // full paths sort as their names do
  return classes;
}

std::vector<std::string> sorted_entries(const std::string& dir,
                                        const std::function<bool(const fs::directory_entry&)>& keep) {
  std::error_code ec;
  std::vector<std::string> paths;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (keep(e)) paths.push_back(e.path().string());
  if (ec) fail("cannot list '", dir, "': ", ec.message());
  std::sort(paths.begin(), paths.end());
  return paths;
}

ImageFolderIndex scan_image_folder(const std::string& root) {
  std::error_code ec;
  ImageFolderIndex idx;
  idx.classes = class_folders(root, "image folder", "ROOT/<class>/<images>, as ImageFolder");

  for (size_t c = 0; c < idx.classes.size(); ++c) {
    const std::string dir = root + "/" + idx.classes[c];
    // os.walk yields (folder, files); sorting those tuples orders by folder path, then file name.
    std::vector<std::pair<std::string, std::string>> found;
    auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec)) continue;
      const auto& p = it->path();
      const std::string name = p.filename().string();
      if (!has_image_extension(name)) {
        ++idx.skipped;
        continue;
      }
      found.emplace_back(p.parent_path().string(), name);
    }
    if (ec) fail("cannot list '", dir, "': ", ec.message());
    if (found.empty()) fail("class folder '", dir, "' holds no image files (.png, .jpg, .jpeg, ...)");
    std::sort(found.begin(), found.end());
    for (const auto& [folder, name] : found) {
      idx.files.push_back(folder + "/" + name);
      idx.labels.push_back(static_cast<int64_t>(c));
    }
  }
  return idx;
}

}  // namespace sdit

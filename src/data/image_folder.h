#pragma once
// torchvision ImageFolder's indexing: classes are the sorted names of root's sub-folders (label =
// index), and each class's files are found by a sorted recursive walk, keeping only image
// extensions (case-insensitive), so labels and sample order match the reference training data.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace sdit {

struct ImageFolderIndex {
  std::vector<std::string> classes;
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  int64_t skipped = 0;  // files without an image extension (ImageFolder ignores them too)
};

// Throws sdit::Error when root is missing, has no class folders, or a class has no images.
ImageFolderIndex scan_image_folder(const std::string& root);

// The sorted names of root's sub-folders (the classes); throws when root is missing or has none,
// naming the expected `layout` ("ROOT/<class>/<images>").
std::vector<std::string> class_folders(const std::string& root, const std::string& what, const std::string& layout);

// The paths of dir's entries that `keep` accepts, sorted (directory order differs from one file
// system to the next, and labels and sample order must not); a listing error names the folder.
std::vector<std::string> sorted_entries(const std::string& dir,
                                        const std::function<bool(const std::filesystem::directory_entry&)>& keep);

}  // namespace sdit

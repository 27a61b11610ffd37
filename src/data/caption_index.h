#pragma once
// Image–caption pairs for text-to-image training data (`sparsedit encode --captions`):
//  - a folder where every image has a caption file beside it, `<stem>.txt` (the layout of most
//    text-to-image training sets on disk); found by a sorted recursive walk;
//  - a JSONL file, one object per line: {"image": PATH, "caption": TEXT}, PATH relative to the
//    JSONL's folder (or absolute). Blank lines are skipped.
#include <cstdint>
#include <string>
#include <vector>

namespace sdit {

struct CaptionedImages {
  std::vector<std::string> files, captions;
  int64_t skipped = 0;  // image files without a caption file (reported, not encoded)
};

// Throws sdit::Error when root is missing or holds no captioned image.
CaptionedImages scan_captioned_folder(const std::string& root);

// The JSONL text of `source` (for errors: "source:line"), image paths resolved against base_dir.
// Throws sdit::Error naming the line on malformed JSON, missing keys or non-string values.
CaptionedImages parse_caption_jsonl(const std::string& text, const std::string& base_dir, const std::string& source);
CaptionedImages read_caption_jsonl(const std::string& path);

}  // namespace sdit

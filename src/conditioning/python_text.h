#pragma once
// Python str semantics the reference pipelines rely on, on UTF-8 std::strings, through ICU (not
// hand-written case tables): str.lower() (full Unicode case mapping with the final-sigma rule,
// İ -> i̇), str.isspace()/strip() (Unicode whitespace, which is not U+200B).
#include <string>
#include <string_view>

namespace sdit {

// Throws sdit::Error ("<what> is not valid UTF-8 (byte offset N)") for malformed UTF-8.
void check_utf8(std::string_view text, const std::string& what);

// str.isspace() for one code point: ICU's White_Space property plus U+001C..U+001F, which Python
// also counts (their bidirectional class is B/S).
bool python_isspace(char32_t c);

// str.lower(): ICU's root-locale full lower-casing (SpecialCasing unconditional mappings and
// Final_Sigma), which is what CPython implements. Input must be valid UTF-8.
std::string python_lower(const std::string& text);

// str.strip() / lstrip() / rstrip() without arguments.
std::string python_strip(const std::string& text);
std::string python_lstrip(const std::string& text);
std::string python_rstrip(const std::string& text);

}  // namespace sdit

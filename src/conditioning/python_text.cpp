#include "conditioning/python_text.h"

#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

#include <vector>

#include "util/error.h"

namespace sdit {
namespace {

std::u16string to_utf16(const std::string& text) {
  UErrorCode err = U_ZERO_ERROR;
  int32_t len = 0;
  u_strFromUTF8(nullptr, 0, &len, text.data(), static_cast<int32_t>(text.size()), &err);
  if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err)) fail("text is not valid UTF-8 (", u_errorName(err), ")");
  std::u16string out(static_cast<size_t>(len), u'\0');
  err = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), len, nullptr, text.data(), static_cast<int32_t>(text.size()), &err);
  if (U_FAILURE(err)) fail("text is not valid UTF-8 (", u_errorName(err), ")");
  return out;
}

std::string to_utf8(const std::u16string& text) {
  UErrorCode err = U_ZERO_ERROR;
  int32_t len = 0;
  u_strToUTF8(nullptr, 0, &len, reinterpret_cast<const UChar*>(text.data()), static_cast<int32_t>(text.size()), &err);
  if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err)) fail("cannot encode text as UTF-8 (", u_errorName(err), ")");
  std::string out(static_cast<size_t>(len), '\0');
  err = U_ZERO_ERROR;
  u_strToUTF8(out.data(), len, nullptr, reinterpret_cast<const UChar*>(text.data()), static_cast<int32_t>(text.size()), &err);
  if (U_FAILURE(err)) fail("cannot encode text as UTF-8 (", u_errorName(err), ")");
  return out;
}

// Byte offset after the leading whitespace, and before the trailing whitespace (ICU's UTF-8 macros
// index with int32_t; prompts are far below 2 GB, check_utf8 guards the size).
size_t lead_end(const std::string& s) {
  const int32_t n = static_cast<int32_t>(s.size());
  int32_t i = 0;
  while (i < n) {
    int32_t next = i;
    UChar32 c;
    U8_NEXT(s.data(), next, n, c);
    if (c < 0 || !python_isspace(static_cast<char32_t>(c))) break;
    i = next;
  }
  return static_cast<size_t>(i);
}

size_t trail_begin(const std::string& s, size_t floor) {
  const int32_t start = static_cast<int32_t>(floor);
  int32_t i = static_cast<int32_t>(s.size());
  while (i > start) {
    int32_t prev = i;
    UChar32 c;
    U8_PREV(s.data(), start, prev, c);
    if (c < 0 || !python_isspace(static_cast<char32_t>(c))) break;
    i = prev;
  }
  return static_cast<size_t>(i);
}

}  // namespace

void check_utf8(std::string_view text, const std::string& what) {
  if (text.size() > (size_t(1) << 30)) fail(what, " is implausibly long (", text.size(), " bytes)");
  const int32_t n = static_cast<int32_t>(text.size());
  int32_t i = 0;
  while (i < n) {
    const int32_t at = i;
    UChar32 c;
    U8_NEXT(text.data(), i, n, c);
    if (c < 0) fail(what, " is not valid UTF-8 (byte offset ", at, ")");
  }
}

bool python_isspace(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)) || (c >= 0x1C && c <= 0x1F); }

std::string python_lower(const std::string& text) {
  const std::u16string src = to_utf16(text);
  UErrorCode err = U_ZERO_ERROR;
  // Lower-casing can lengthen the text (İ -> i + U+0307); ask for the size first.
  int32_t len = u_strToLower(nullptr, 0, reinterpret_cast<const UChar*>(src.data()), static_cast<int32_t>(src.size()),
                             "", &err);
  if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err)) fail("lower-casing failed (", u_errorName(err), ")");
  std::u16string out(static_cast<size_t>(len), u'\0');
  err = U_ZERO_ERROR;
  u_strToLower(reinterpret_cast<UChar*>(out.data()), len, reinterpret_cast<const UChar*>(src.data()),
               static_cast<int32_t>(src.size()), "", &err);  // "": the root locale, no Turkish/Lithuanian rules
  if (U_FAILURE(err)) fail("lower-casing failed (", u_errorName(err), ")");
  return to_utf8(out);
}

std::string python_strip(const std::string& text) {
  const size_t b = lead_end(text);
  return text.substr(b, trail_begin(text, b) - b);
}

std::string python_lstrip(const std::string& text) { return text.substr(lead_end(text)); }

std::string python_rstrip(const std::string& text) { return text.substr(0, trail_begin(text, 0)); }

}  // namespace sdit

#include "conditioning/caption.h"

#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/ucnv.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include <memory>
#include <mutex>
#include <vector>

#include "conditioning/python_text.h"
#include "util/error.h"

namespace sdit {
namespace {

using icu::UnicodeString;

constexpr size_t kMaxFullCleaningBytes = 8192;

// Python `re` (str patterns) classes in ICU syntax. Python: \w = str.isalnum() or "_" (letters and
// numbers, not combining marks), \d = category Nd, \s = str.isspace(), \b = a \w / non-\w boundary.
#define PY_W "[\\p{L}\\p{N}_]"
#define PY_S "[\\p{White_Space}\\x{1C}-\\x{1F}]"
#define PY_NS "[^\\p{White_Space}\\x{1C}-\\x{1F}]"
#define PY_D "\\p{Nd}"
#define PY_ND "\\P{Nd}"
#define PY_B "(?:(?<=" PY_W ")(?!" PY_W ")|(?<!" PY_W ")(?=" PY_W "))"

UnicodeString u(const std::string& s) { return UnicodeString::fromUTF8(s); }
std::string utf8(const UnicodeString& s) {
  std::string out;
  s.toUTF8String(out);
  return out;
}

// A compiled pattern shared by all calls (ICU patterns are immutable and thread-safe; matchers are not).
class Re {
 public:
  explicit Re(const char* pattern) {
    UErrorCode err = U_ZERO_ERROR;
    UParseError pe;
    // UNIX_LINES: only \n ends a line, so `$` is Python's (end, or before a final \n).
    pattern_.reset(icu::RegexPattern::compile(u(pattern), UREGEX_UNIX_LINES, pe, err));
    if (U_FAILURE(err)) fail("internal: caption regex '", pattern, "' does not compile (", u_errorName(err), ")");
  }
  // re.sub(pattern, repl, text); repl uses $1 for groups.
  UnicodeString sub(const UnicodeString& text, const char* repl) const {
    UErrorCode err = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(text, err));
    UnicodeString out = m->replaceAll(u(repl), err);
    if (U_FAILURE(err)) fail("caption cleaning failed (", u_errorName(err), ")");
    return out;
  }
  // re.sub with a function: fn(match's group 1) replaces each match.
  template <typename F>
  UnicodeString sub_each(const UnicodeString& text, F fn) const {
    UErrorCode err = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(text, err));
    UnicodeString out;
    int32_t last = 0;
    while (m->find(err) && U_SUCCESS(err)) {
      out.append(text, last, m->start(err) - last);
      out.append(fn(m->group(1, err)));
      last = m->end(err);
    }
    if (U_FAILURE(err)) fail("caption cleaning failed (", u_errorName(err), ")");
    out.append(text, last, text.length() - last);
    return out;
  }
  int count(const UnicodeString& text) const {
    UErrorCode err = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(text, err));
    int n = 0;
    while (m->find(err) && U_SUCCESS(err)) ++n;
    return n;
  }

 private:
  std::unique_ptr<icu::RegexPattern> pattern_;
};

// One pattern and its replacement: diffusers' _clean_caption is a list of re.sub calls.
struct Sub {
  Re re;
  const char* repl;
};

// windows-1252 for a byte 0x80..0x9F; its five undefined bytes stay the C1 control, as in Python's
// html.unescape table and ftfy's "sloppy" codec.
UChar32 cp1252(uint8_t byte) {
  static const std::vector<UChar32> table = [] {
    std::vector<UChar32> t(32);
    UErrorCode err = U_ZERO_ERROR;
    UConverter* cnv = ucnv_open("windows-1252", &err);
    for (int b = 0; b < 32; ++b) {
      t[b] = 0x80 + b;
      if (U_FAILURE(err)) continue;
      const char in = static_cast<char>(0x80 + b);
      UChar out[4];
      UErrorCode e = U_ZERO_ERROR;
      const int32_t n = ucnv_toUChars(cnv, out, 4, &in, 1, &e);
      if (U_SUCCESS(e) && n == 1 && out[0] != 0xFFFD && out[0] != 0x1A) t[b] = out[0];
    }
    if (cnv) ucnv_close(cnv);
    return t;
  }();
  return table.at(byte - 0x80);
}

// The named references html.unescape is most likely to meet in captions (HTML5 has 2,231; the
// rest stay as written). `legacy`: also recognised without the closing ';' (HTML5's legacy list).
struct Entity {
  const char* name;
  const char* text;
  bool legacy;
};
const Entity kEntities[] = {
    {"amp", "&", true},     {"AMP", "&", true},     {"lt", "<", true},       {"LT", "<", true},
    {"gt", ">", true},      {"GT", ">", true},      {"quot", "\"", true},    {"QUOT", "\"", true},
    {"apos", "'", false},   {"nbsp", "\u00a0", true}, {"copy", "©", true},   {"COPY", "©", true},
    {"reg", "®", true},     {"REG", "®", true},     {"trade", "™", false},   {"hellip", "…", false},
    {"mdash", "—", false},  {"ndash", "–", false},  {"lsquo", "‘", false},   {"rsquo", "’", false},
    {"sbquo", "‚", false},  {"ldquo", "“", false},  {"rdquo", "”", false},   {"bdquo", "„", false},
    {"laquo", "«", true},   {"raquo", "»", true},   {"middot", "·", true},   {"bull", "•", false},
    {"deg", "°", true},     {"times", "×", true},   {"divide", "÷", true},   {"plusmn", "±", true},
    {"frac12", "½", true},  {"frac14", "¼", true},  {"frac34", "¾", true},   {"euro", "€", false},
    {"pound", "£", true},   {"yen", "¥", true},     {"cent", "¢", true},     {"sect", "§", true},
    {"para", "¶", true},    {"iexcl", "¡", true},   {"iquest", "¿", true},   {"shy", "\u00ad", true},
    {"ordm", "º", true},    {"ordf", "ª", true},    {"micro", "µ", true},    {"dagger", "†", false},
    {"Dagger", "‡", false}, {"permil", "‰", false}, {"larr", "←", false},    {"rarr", "→", false},
    {"hearts", "♥", false}, {"infin", "∞", false},  {"ne", "≠", false},      {"le", "≤", false},
    {"ge", "≥", false},     {"minus", "−", false},  {"eacute", "é", true},   {"egrave", "è", true},
    {"agrave", "à", true},  {"ccedil", "ç", true},  {"uuml", "ü", true},     {"ouml", "ö", true},
    {"auml", "ä", true},    {"szlig", "ß", true},   {"ntilde", "ñ", true},   {"aacute", "á", true},
};

// html.unescape's numeric references: cp1252 for 0x80..0x9F, U+FFFD for NUL, surrogates and
// out-of-range values, nothing for the other invalid code points.
UnicodeString numeric_reference(uint64_t num) {
  if (num == 0) return UnicodeString(static_cast<UChar32>(0xFFFD));
  if (num == 0x0D) return UnicodeString(static_cast<UChar32>(0x0D));
  if (num >= 0x80 && num <= 0x9F) return UnicodeString(cp1252(static_cast<uint8_t>(num)));
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return UnicodeString(static_cast<UChar32>(0xFFFD));
  if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || (num >= 0x7F && num <= 0x9F) ||
      (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
    return UnicodeString();
  return UnicodeString(static_cast<UChar32>(num));
}

// One match of html.unescape's pattern, without the '&'.
UnicodeString unescape_reference(const UnicodeString& ref) {
  if (ref.startsWith(u"#")) {
    const bool hex = ref.length() > 1 && (ref[1] == u'x' || ref[1] == u'X');
    uint64_t num = 0;
    for (int32_t i = hex ? 2 : 1; i < ref.length() && ref[i] != u';'; ++i) {
      const UChar c = ref[i];
      const int digit = c <= u'9' ? c - u'0' : (c | 0x20) - u'a' + 10;
      num = std::min<uint64_t>(num * (hex ? 16 : 10) + digit, 0x7FFFFFFF);
    }
    return numeric_reference(num);
  }
  const std::string s = utf8(ref);
  for (const auto& e : kEntities)
    if (s == std::string(e.name) + ";" || (e.legacy && s == e.name)) return u(e.text);
  // No exact match: the longest legacy name that is a prefix (html.unescape: "&ampx" -> "&x").
  for (size_t x = s.size() - 1; x > 1; --x)
    for (const auto& e : kEntities)
      if (e.legacy && s.compare(0, x, e.name) == 0 && std::string(e.name).size() == x)
        return u(e.text) + u(s.substr(x));
  return UnicodeString(u"&") + ref;
}

UnicodeString html_unescape(const UnicodeString& text) {
  if (text.indexOf(u'&') < 0) return text;
  static const Re ref("&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\\t\\n\\f <&#;]{1,32};?)");
  return ref.sub_each(text, unescape_reference);
}

UnicodeString unquote_plus(const std::string& text);  // below
UnicodeString strip_html_tags(const UnicodeString& text);
UnicodeString ftfy_fix_text(const UnicodeString& text);

}  // namespace

CaptionCleaning parse_caption_cleaning(const std::string& name) {
  if (name == "none") return CaptionCleaning::None;
  if (name == "basic") return CaptionCleaning::Basic;
  if (name == "full") return CaptionCleaning::Full;
  fail("invalid caption cleaning '", name, "': use none, basic or full");
}

const char* caption_cleaning_name(CaptionCleaning mode) {
  switch (mode) {
    case CaptionCleaning::None: return "none";
    case CaptionCleaning::Basic: return "basic";
    case CaptionCleaning::Full: return "full";
  }
  return "?";
}

std::string clean_caption(const std::string& text, CaptionCleaning mode) {
  check_utf8(text, "prompt");
  switch (mode) {
    case CaptionCleaning::None: return text;
    case CaptionCleaning::Basic: return python_strip(python_lower(text));
    case CaptionCleaning::Full: return clean_caption_full_once(clean_caption_full_once(text));
  }
  return text;
}

std::string clean_caption_full_once(const std::string& text) {
  check_utf8(text, "prompt");
  // Some of the patterns (the URL ones) backtrack quadratically, as in Python: 10,000 characters
  // take seconds, a megabyte would take hours. Captions are far shorter (T5 reads 120 tokens).
  if (text.size() > kMaxFullCleaningBytes)
    fail("prompt of ", text.size(), " bytes is too long for --clean-caption full (at most ", kMaxFullCleaningBytes,
         "); use basic");
  UnicodeString c = unquote_plus(text);
  c = u(python_lower(python_strip(utf8(c))));
  static const Sub before_html[] = {
      {Re("<person>"), "person"},
      {Re(PY_B "((?:https?:(?:/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\\p{L}\\p{N}_/\\-]*" PY_B
              "/?(?!@)))"),
       ""},
      {Re(PY_B "((?:www:(?:/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\\p{L}\\p{N}_/\\-]*" PY_B
              "/?(?!@)))"),
       ""},
  };
  for (const auto& s : before_html) c = s.re.sub(c, s.repl);
  c = html_unescape(strip_html_tags(c));  // BeautifulSoup(html.parser).text, approximately
  static const Sub subs[] = {
      {Re("@[\\p{L}\\p{N}_]+" PY_B), ""},
      // CJK strokes, katakana extensions, enclosed CJK, CJK compatibility, ideographs (ext. A,
      // hexagrams, unified); removing each block in turn is removing their union.
      {Re("[\\x{31C0}-\\x{31EF}\\x{31F0}-\\x{31FF}\\x{3200}-\\x{32FF}\\x{3300}-\\x{33FF}\\x{3400}-\\x{4DBF}"
          "\\x{4DC0}-\\x{4DFF}\\x{4E00}-\\x{9FFF}]+"),
       ""},
      {Re("[\\x{002D}\\x{058A}\\x{05BE}\\x{1400}\\x{1806}\\x{2010}-\\x{2015}\\x{2E17}\\x{2E1A}\\x{2E3A}\\x{2E3B}"
          "\\x{2E40}\\x{301C}\\x{3030}\\x{30A0}\\x{FE31}\\x{FE32}\\x{FE58}\\x{FE63}\\x{FF0D}]+"),
       "-"},
      {Re("[`´«»“”¨]"), "\""},
      {Re("[‘’]"), "'"},
      {Re("&quot;?"), ""},
      {Re("&amp"), ""},
      {Re(PY_D "{1,3}\\." PY_D "{1,3}\\." PY_D "{1,3}\\." PY_D "{1,3}"), " "},
      {Re(PY_D ":" PY_D PY_D PY_S "+$"), ""},
      {Re("\\\\n"), " "},
      {Re("#" PY_D "{1,3}" PY_B), ""},
      {Re("#" PY_D "{5,}" PY_B), ""},
      {Re(PY_B PY_D "{6,}" PY_B), ""},
      {Re(PY_NS "+\\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)"), ""},
      {Re("[\"']{2,}"), "\""},
      {Re("[.]{2,}"), " "},
      {Re("[#®•©™\\&@·º½¾¿¡§~\\)\\(\\]\\[\\}\\{|\\\\/*]+"), " "},  // diffusers' bad_punct_regex
      {Re(PY_S "+\\." PY_S "+"), " "},
  };
  for (const auto& s : subs) c = s.re.sub(c, s.repl);
  static const Re dash_or_underscore("(?:-|_)");
  if (dash_or_underscore.count(c) > 3) c = dash_or_underscore.sub(c, " ");  // this-is-my-cute-cat
  c = html_unescape(html_unescape(ftfy_fix_text(c)));
  static const Sub after_fix[] = {
      {Re(PY_B "[a-zA-Z]{1,3}" PY_D "{3,15}" PY_B), ""},  // jc6640
      {Re(PY_B "[a-zA-Z]+" PY_D "+[a-zA-Z]+" PY_B), ""},  // jc6640vc
      {Re(PY_B PY_D "+[a-zA-Z]+" PY_D "+" PY_B), ""},     // 6640vc231
      {Re("(worldwide" PY_S "+)?(free" PY_S "+)?shipping"), ""},
      {Re("(free" PY_S ")?download(" PY_S "free)?"), ""},
      {Re(PY_B "click" PY_B PY_S "(?:for|on)" PY_S PY_W "+"), ""},
      {Re(PY_B "(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(" PY_S "image[s]?)?"), ""},
      {Re(PY_B "page" PY_S "+" PY_D "+" PY_B), ""},
      {Re(PY_B PY_D "*[a-zA-Z]+" PY_D "+[a-zA-Z]+" PY_D "+[a-zA-Z\\p{Nd}]*" PY_B), " "},  // j2d1a2a...
      {Re(PY_B PY_D "+\\.?" PY_D "*[xх×]" PY_D "+\\.?" PY_D "*" PY_B), ""},
      {Re(PY_B PY_S "+:" PY_S "+"), ": "},
      {Re("(" PY_ND "[,./])" PY_B), "$1 "},
      {Re(PY_S "+"), " "},
      {Re("^[\"']([\\x{0}-\\x{10FFFF}]+)[\"']$"), "$1"},
      {Re("^['_,\\-:;]"), ""},
      {Re("['_,\\-:\\-+]$"), ""},
      {Re("^\\." PY_NS "+$"), ""},
  };
  for (const auto& s : after_fix) c = s.re.sub(c, s.repl);
  return python_strip(utf8(c));
}

namespace {

// urllib.parse.unquote_plus: '+' -> ' ', then every run of %XX escapes is decoded as UTF-8 with
// U+FFFD for invalid sequences ('%' without two hex digits stays).
UnicodeString unquote_plus(const std::string& text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  UnicodeString out;
  std::string bytes;  // the current run of escapes
  auto flush = [&]() {
    if (bytes.empty()) return;
    UErrorCode err = U_ZERO_ERROR;
    std::vector<UChar> buf(bytes.size() * 2 + 1);
    int32_t n = 0;
    u_strFromUTF8WithSub(buf.data(), static_cast<int32_t>(buf.size()), &n, bytes.data(),
                         static_cast<int32_t>(bytes.size()), 0xFFFD, nullptr, &err);
    out.append(buf.data(), n);
    bytes.clear();
  };
  size_t i = 0;
  std::string plain;
  while (i < text.size()) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out.append(u(plain));
      plain.clear();
      bytes.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 3;
      continue;
    }
    flush();
    plain.push_back(text[i] == '+' ? ' ' : text[i]);
    ++i;
  }
  flush();
  out.append(u(plain));
  return out;
}

// Approximates BeautifulSoup(text, "html.parser").text: comments, declarations, processing
// instructions and complete start/end tags (quoted attribute values may hold '>') are dropped.
UnicodeString strip_html_tags(const UnicodeString& text) {
  if (text.indexOf(u'<') < 0) return text;
  static const Sub tags[] = {
      {Re("<!--[\\x{0}-\\x{10FFFF}]*?-->"), ""},
      {Re("<[!?][^>]*>"), ""},
      {Re("</?[a-zA-Z](?:[^>\"']|\"[^\"]*\"|'[^']*')*>"), ""},
  };
  UnicodeString c = text;
  for (const auto& s : tags) c = s.re.sub(c, s.repl);
  return c;
}

// ftfy.fix_text's repairs that need no mojibake detection, applied until nothing changes.
UnicodeString ftfy_fix_text(const UnicodeString& text) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
  const icu::Normalizer2* nfkc = icu::Normalizer2::getNFKCInstance(err);
  if (U_FAILURE(err)) fail("ICU normalisation data is unavailable (", u_errorName(err), ")");
  static const Re terminal_escapes("\\x{1B}\\[((?:\\d|;)*)([a-zA-Z])");
  static const Re crlf("\\r\\n");
  static const Re line_breaks("[\\r\\x{2028}\\x{2029}\\x{85}]");
  static const Re single_quotes("[\\x{2BC}\\x{2018}-\\x{201B}]");
  static const Re double_quotes("[\\x{201C}-\\x{201F}]");
  // ftfy's CONTROL_CHARS: C0 except \t \n \f \r, DEL, deprecated format characters, BOM, interlinear
  // annotations, musical formatting, tags.
  static const Re control("[\\x{0}-\\x{8}\\x{B}\\x{E}-\\x{1F}\\x{7F}\\x{206A}-\\x{206F}\\x{FEFF}\\x{FFF9}-\\x{FFFC}"
                          "\\x{1D173}-\\x{1D17A}\\x{E0000}-\\x{E007F}]");
  UnicodeString c = text, prev;
  do {
    prev = c;
    c = terminal_escapes.sub(c, "");
    UnicodeString fixed;
    for (int32_t i = 0; i < c.length();) {
      const UChar32 ch = c.char32At(i);
      i += U16_LENGTH(ch);
      if (ch >= 0x80 && ch <= 0x9F) {
        fixed.append(cp1252(static_cast<uint8_t>(ch)));  // fix_c1_controls
      } else if (ch == 0x3000) {
        fixed.append(u' ');  // fix_character_width
      } else if ((ch >= 0xFF01 && ch < 0xFFF0) || (ch >= 0xFB00 && ch <= 0xFB06 && ch != 0xFB05) || ch == 0x132 ||
                 ch == 0x133 || ch == 0x149 || (ch >= 0x1C4 && ch <= 0x1CC) || (ch >= 0x1F1 && ch <= 0x1F3)) {
        fixed.append(nfkc->normalize(UnicodeString(ch), err));  // widths and Latin ligatures
      } else if (ch == 0xFB05) {
        fixed.append(u"\u017Ft");  // ftfy keeps the long s of ﬅ
      } else {
        fixed.append(ch);
      }
    }
    c = single_quotes.sub(double_quotes.sub(fixed, "\""), "'");  // uncurl_quotes
    c = line_breaks.sub(crlf.sub(c, "\n"), "\n");
    c = control.sub(c, "");
    c = nfc->normalize(c, err);
    if (U_FAILURE(err)) fail("caption normalisation failed (", u_errorName(err), ")");
  } while (c != prev);
  return c;
}

}  // namespace
}  // namespace sdit

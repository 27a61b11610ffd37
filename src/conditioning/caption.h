#pragma once
// Caption preprocessing before the T5 tokenizer, as diffusers' PixArtAlphaPipeline._text_preprocessing:
//  - none:  the prompt as given;
//  - basic: text.lower().strip() with Python's Unicode semantics (clean_caption=False);
//  - full:  _clean_caption applied twice (clean_caption=True, the pipeline's default), as far as it
//           can be reproduced without Python's bs4 and ftfy: see clean_caption_full for what differs.
#include <string>

namespace sdit {

enum class CaptionCleaning { None, Basic, Full };

CaptionCleaning parse_caption_cleaning(const std::string& name);  // none | basic | full
const char* caption_cleaning_name(CaptionCleaning mode);

// Throws sdit::Error for text that is not valid UTF-8.
std::string clean_caption(const std::string& text, CaptionCleaning mode);

// One pass of diffusers' _clean_caption (the pipeline applies it twice). Reproduced: unquote_plus,
// strip/lower, every regex (Python `re` Unicode classes \w \d \s \b emulated in ICU regex), the CJK
// removals, dash/quote normalisation, html.unescape for numeric and the common named entities.
// Approximated: BeautifulSoup(html.parser).text is a tag stripper (no DOM: unbalanced markup, CDATA,
// comments and <script>/<style> content differ), ftfy.fix_text does only the repairs that need no
// mojibake detection (NFC, ligatures, fullwidth -> ASCII, C0/C1 controls, line breaks, curly quotes);
// html.unescape knows only a subset of HTML5's 2,231 named entities. Prompts over 8 kB are refused
// (some patterns backtrack quadratically, as they do in Python).
std::string clean_caption_full_once(const std::string& text);

}  // namespace sdit

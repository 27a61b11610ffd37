#pragma once
// Checks of a serialized SentencePiece model that libsentencepiece 0.1.97 does not make itself.
// Its normaliser trusts the precompiled character map (a darts-clone double-array trie followed by
// NUL-terminated replacement strings): a corrupt map makes Normalizer::Normalize read outside the
// blob (found by fuzz/fuzz_spiece.cpp under AddressSanitizer). So before SentencePiece sees a
// model, the maps of its normalizer_spec and denormalizer_spec are walked here: every trie
// transition must stay inside the array and every value must name a NUL-terminated string inside
// the blob.
#include <string>
#include <string_view>

namespace sdit {

// Empty when the model's precompiled character maps are safe to use; otherwise why not. Only the
// protobuf fields it needs are read (ModelProto.normalizer_spec / denormalizer_spec
// .precompiled_charsmap); everything else is left to SentencePiece's own parser.
std::string check_sentencepiece_charsmaps(std::string_view model);

}  // namespace sdit

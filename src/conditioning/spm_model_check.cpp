#include "conditioning/spm_model_check.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace sdit {
namespace {

// Real maps are ~240 kB (nmt_nfkc); larger ones only come from corrupt or hostile files, and the
// walk below costs 256 steps per trie unit.
constexpr size_t kMaxCharsmapBytes = 4u << 20;
// Normalizer::NormalizePrefix keeps at most 32 prefix matches in a stack array but loops over all
// of them, so a path through the trie may carry at most 32 leaves.
constexpr int kMaxLeavesOnPath = 32;

// ---- the protobuf wire format, just enough to find the two maps ----------------------------------

struct Wire {
  std::string_view data;
  size_t pos = 0;
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= data.size()) return false;
      const uint8_t b = static_cast<uint8_t>(data[pos++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // One field: its number and, for length-delimited ones, the payload. False when malformed.
  bool next(uint32_t& field, std::optional<std::string_view>& payload) {
    uint64_t key = 0, v = 0;
    if (!varint(key) || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF) return false;
    field = static_cast<uint32_t>(key >> 3);
    payload.reset();
    switch (key & 7) {
      case 0: return varint(v);
      case 1: return skip(8);
      case 5: return skip(4);
      case 2:
        if (!varint(v) || v > data.size() - pos) return false;
        payload = data.substr(pos, v);
        pos += v;
        return true;
      default: return false;  // groups (3, 4) never appear in SentencePiece models; 6, 7 are invalid
    }
  }
  bool skip(size_t n) {
    if (n > data.size() - pos) return false;
    pos += n;
    return true;
  }
};

// precompiled_charsmap (field 2) of every occurrence of `spec_field`; protobuf merges repeated
// occurrences of a message, so the last charsmap seen wins. False when the wire format is broken.
bool find_charsmap(std::string_view model, uint32_t spec_field, std::string_view& charsmap) {
  Wire top{model};
  while (top.pos < model.size()) {
    uint32_t f = 0;
    std::optional<std::string_view> p;
    if (!top.next(f, p)) return false;
    if (f != spec_field || !p) continue;
    Wire spec{*p};
    while (spec.pos < p->size()) {
      uint32_t g = 0;
      std::optional<std::string_view> q;
      if (!spec.next(g, q)) return false;
      if (g == 2 && q) charsmap = *q;
    }
  }
  return true;
}

// ---- the darts-clone double array, as Darts::DoubleArray::commonPrefixSearch reads it ------------

uint32_t unit_at(std::string_view trie, size_t i) {
  uint32_t u;
  std::memcpy(&u, trie.data() + 4 * i, 4);
  return u;
}
bool has_leaf(uint32_t u) { return (u >> 8) & 1; }
uint32_t value_of(uint32_t u) { return u & ((1u << 31) - 1); }
uint32_t label_of(uint32_t u) { return u & ((1u << 31) | 0xFF); }
uint32_t offset_of(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

std::string check_charsmap(std::string_view blob, const char* which) {
  const std::string where = std::string(which) + ".precompiled_charsmap";
  if (blob.empty()) return "";
  if (blob.size() > kMaxCharsmapBytes) return where + " is implausibly large";
  uint32_t trie_bytes = 0;
  if (blob.size() < 4) return where + " is truncated";
  std::memcpy(&trie_bytes, blob.data(), 4);
  if (trie_bytes > blob.size() - 4) return where + ": its trie runs past the end";
  const std::string_view trie = blob.substr(4, trie_bytes), strings = blob.substr(4 + trie_bytes);
  const size_t n = trie.size() / 4;
  if (n == 0) return where + ": its trie is empty";
  // Depth-first over the trie from the root. A node is the unit a matched byte leads to; from its
  // base (unit index ^ offset) byte c leads to unit base ^ c when that unit's label is c. States:
  // 0 unseen, 1 on the current path (seen again: a cycle), 2 done. leaves[u]: the most leaf-flagged
  // units on a path below u, i.e. the most matches commonPrefixSearch can report from there.
  std::vector<uint8_t> state(n, 0);
  std::vector<int> leaves(n, 0);
  struct Frame {
    uint32_t unit, base;
    uint32_t next_byte;
  };
  std::vector<Frame> stack{{0, offset_of(unit_at(trie, 0)), 0}};  // darts: id = 0; id ^= offset
  state[0] = 1;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next_byte > 255) {  // every byte tried: finished, report to the parent
      const uint32_t u = f.unit;
      state[u] = 2;
      stack.pop_back();
      const int through_u = leaves[u] + (has_leaf(unit_at(trie, u)) ? 1 : 0);
      if (through_u > kMaxLeavesOnPath) return where + ": a trie path holds too many matches";
      if (!stack.empty()) leaves[stack.back().unit] = std::max(leaves[stack.back().unit], through_u);
      continue;
    }
    const uint32_t c = f.next_byte++;
    const uint64_t child = static_cast<uint64_t>(f.base) ^ c;
    if (child >= n) return where + ": a trie transition leaves the array";
    const uint32_t cu = unit_at(trie, child);
    if (label_of(cu) != c) continue;  // no edge for this byte
    const uint64_t child_base = child ^ offset_of(cu);
    if (has_leaf(cu)) {
      if (child_base >= n) return where + ": a trie value lies outside the array";
      const uint32_t v = value_of(unit_at(trie, child_base));
      if (v >= strings.size() || std::memchr(strings.data() + v, '\0', strings.size() - v) == nullptr)
        return where + ": a replacement string lies outside the map";
    }
    if (state[child] == 1) return where + ": its trie has a cycle";
    if (state[child] == 2) {  // shared below (a DAG): its count is known
      leaves[f.unit] = std::max(leaves[f.unit], leaves[child] + (has_leaf(cu) ? 1 : 0));
      continue;
    }
    state[child] = 1;
    stack.push_back({static_cast<uint32_t>(child), static_cast<uint32_t>(child_base), 0});
  }
  return "";
}

}  // namespace

std::string check_sentencepiece_charsmaps(std::string_view model) {
  std::string_view normalizer, denormalizer;
  if (!find_charsmap(model, 3, normalizer) || !find_charsmap(model, 5, denormalizer))
    return "malformed protobuf data";
  std::string why = check_charsmap(normalizer, "normalizer_spec");
  if (why.empty()) why = check_charsmap(denormalizer, "denormalizer_spec");
  return why;
}

}  // namespace sdit

// A plain-C face of libsentencepiece, built as its own loadable module (libsparsedit_spm.so).
//
// Why: Debian's libsentencepiece embeds a private copy of protobuf-lite and exports its symbols;
// libtorch links the system libprotobuf. Linked into one process, libprotobuf's start-up code binds
// to SentencePiece's copy and crashes before main (and SentencePiece would otherwise bind to the
// wrong protobuf). conditioning/sentencepiece.cpp therefore dlopen()s this module with
// RTLD_LOCAL | RTLD_DEEPBIND: SentencePiece keeps its own protobuf, the process keeps libtorch's, and
// only the C functions below cross the boundary (no C++ objects, no exceptions).
#include <sentencepiece_processor.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

extern "C" {

// Copies a message into err (always NUL-terminated when errlen > 0).
static void set_error(char* err, size_t errlen, const std::string& msg) {
  if (!err || errlen == 0) return;
  const size_t n = msg.size() < errlen - 1 ? msg.size() : errlen - 1;
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

// A processor for the serialized model, or nullptr with the reason in err.
void* sdit_spm_load(const char* data, size_t size, char* err, size_t errlen) {
  try {
    auto* sp = new sentencepiece::SentencePieceProcessor();
    const auto status = sp->LoadFromSerializedProto(absl::string_view(data, size));
    if (!status.ok()) {
      set_error(err, errlen, status.ToString());
      delete sp;
      return nullptr;
    }
    return sp;
  } catch (const std::exception& e) {
    set_error(err, errlen, e.what());
  } catch (...) {
    set_error(err, errlen, "unknown failure");
  }
  return nullptr;
}

void sdit_spm_free(void* sp) { delete static_cast<sentencepiece::SentencePieceProcessor*>(sp); }

int sdit_spm_piece_size(const void* sp) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->GetPieceSize();
}

int sdit_spm_unk_id(const void* sp) { return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->unk_id(); }

int sdit_spm_piece_to_id(const void* sp, const char* piece, size_t size) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->PieceToId(absl::string_view(piece, size));
}

// Encodes text into pieces, reporting each through emit(ctx, piece, size). 0 on success; else -1
// with the reason in err.
int sdit_spm_encode(const void* sp, const char* text, size_t size, void (*emit)(void*, const char*, size_t), void* ctx,
                    char* err, size_t errlen) {
  try {
    std::vector<std::string> pieces;
    const auto status =
        static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->Encode(absl::string_view(text, size), &pieces);
    if (!status.ok()) {
      set_error(err, errlen, status.ToString());
      return -1;
    }
    for (const auto& p : pieces) emit(ctx, p.data(), p.size());
    return 0;
  } catch (const std::exception& e) {
    set_error(err, errlen, e.what());
  } catch (...) {
    set_error(err, errlen, "unknown failure");
  }
  return -1;
}

}  // extern "C"

#pragma once
// Debian's libsentencepiece behind a small C++ interface. The library is reached through the
// libsparsedit_spm.so module (spm_shim.cpp), loaded isolated (RTLD_LOCAL | RTLD_DEEPBIND) because
// it exports a private protobuf that clashes with libtorch's libprotobuf in one symbol namespace.
// Builds without libtorch (fuzzing) define SPARSEDIT_SPM_LINKED and link the shim directly.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sdit {

class SentencePiece {
 public:
  // Loads a serialized ModelProto; throws sdit::Error ("<what> is not a usable SentencePiece model
  // (...)") when SentencePiece refuses it.
  static std::shared_ptr<const SentencePiece> from_bytes(std::string_view model, const std::string& what);
  ~SentencePiece();
  SentencePiece(const SentencePiece&) = delete;
  SentencePiece& operator=(const SentencePiece&) = delete;

  std::vector<std::string> encode(std::string_view text) const;  // sp.encode(text, out_type=str)
  int piece_to_id(std::string_view piece) const;                 // unk_id for unknown pieces
  int piece_size() const;
  int unk_id() const;

 private:
  SentencePiece() = default;
  void* handle_ = nullptr;
};

}  // namespace sdit

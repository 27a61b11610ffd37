#include "conditioning/sentencepiece.h"

#include <cstddef>
#include <cstdlib>
#include <filesystem>

#include "conditioning/spm_model_check.h"
#include "util/error.h"

#ifndef SPARSEDIT_SPM_LINKED
#include <dlfcn.h>
#endif

extern "C" {
// The shim's functions (spm_shim.cpp): declarations for the linked build, types for the loaded one.
void* sdit_spm_load(const char* data, size_t size, char* err, size_t errlen);
void sdit_spm_free(void* sp);
int sdit_spm_piece_size(const void* sp);
int sdit_spm_unk_id(const void* sp);
int sdit_spm_piece_to_id(const void* sp, const char* piece, size_t size);
int sdit_spm_encode(const void* sp, const char* text, size_t size, void (*emit)(void*, const char*, size_t), void* ctx,
                    char* err, size_t errlen);
}

namespace sdit {
namespace {

struct Api {
  decltype(&sdit_spm_load) load;
  decltype(&sdit_spm_free) free;
  decltype(&sdit_spm_piece_size) piece_size;
  decltype(&sdit_spm_unk_id) unk_id;
  decltype(&sdit_spm_piece_to_id) piece_to_id;
  decltype(&sdit_spm_encode) encode;
};

#ifdef SPARSEDIT_SPM_LINKED
const Api& api() {
  static const Api a{sdit_spm_load, sdit_spm_free, sdit_spm_piece_size, sdit_spm_unk_id, sdit_spm_piece_to_id,
                     sdit_spm_encode};
  return a;
}
#else
constexpr const char* kModule = "libsparsedit_spm.so";

// The module next to the running binary (the build folder), else SPARSEDIT_SPM_MODULE, else the
// loader's search path (LD_LIBRARY_PATH).
void* open_module(std::string& tried) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("SPARSEDIT_SPM_MODULE"); env && *env) candidates.push_back(env);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back((exe.parent_path() / kModule).string());
  candidates.push_back(kModule);
  for (const auto& c : candidates) {
    // LOCAL: its symbols stay out of the process's namespace; DEEPBIND: SentencePiece binds to its
    // own protobuf copy first, not to libtorch's libprotobuf.
    if (void* h = ::dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)) return h;
    const char* why = ::dlerror();
    tried += "\n  " + c + ": " + (why ? why : "not loadable");
  }
  return nullptr;
}

const Api& api() {
  static const Api a = [] {
    std::string tried;
    void* h = open_module(tried);
    if (!h) fail("cannot load the SentencePiece module ", kModule, " (built next to the sparsedit binary):", tried);
    auto sym = [&](const char* name) {
      void* s = ::dlsym(h, name);
      if (!s) fail("the SentencePiece module lacks '", name, "'");
      return s;
    };
    return Api{reinterpret_cast<decltype(&sdit_spm_load)>(sym("sdit_spm_load")),
               reinterpret_cast<decltype(&sdit_spm_free)>(sym("sdit_spm_free")),
               reinterpret_cast<decltype(&sdit_spm_piece_size)>(sym("sdit_spm_piece_size")),
               reinterpret_cast<decltype(&sdit_spm_unk_id)>(sym("sdit_spm_unk_id")),
               reinterpret_cast<decltype(&sdit_spm_piece_to_id)>(sym("sdit_spm_piece_to_id")),
               reinterpret_cast<decltype(&sdit_spm_encode)>(sym("sdit_spm_encode"))};
  }();
  return a;
}
#endif

}  // namespace

std::shared_ptr<const SentencePiece> SentencePiece::from_bytes(std::string_view model, const std::string& what) {
  // libsentencepiece trusts the model's character maps; a corrupt one makes it read out of bounds.
  if (const std::string why = check_sentencepiece_charsmaps(model); !why.empty())
    fail(what, " is not a usable SentencePiece model (", why, ")");
  char err[512] = {0};
  void* h = api().load(model.data(), model.size(), err, sizeof err);
  if (!h) fail(what, " is not a usable SentencePiece model (", err, ")");
  std::shared_ptr<SentencePiece> sp(new SentencePiece());
  sp->handle_ = h;
  return sp;
}

SentencePiece::~SentencePiece() {
  if (handle_) api().free(handle_);
}

std::vector<std::string> SentencePiece::encode(std::string_view text) const {
  std::vector<std::string> pieces;
  char err[512] = {0};
  auto emit = [](void* ctx, const char* p, size_t n) { static_cast<std::vector<std::string>*>(ctx)->emplace_back(p, n); };
  if (api().encode(handle_, text.data(), text.size(), emit, &pieces, err, sizeof err) != 0)
    fail("SentencePiece could not encode the prompt (", err, ")");
  return pieces;
}

int SentencePiece::piece_to_id(std::string_view piece) const { return api().piece_to_id(handle_, piece.data(), piece.size()); }
int SentencePiece::piece_size() const { return api().piece_size(handle_); }
int SentencePiece::unk_id() const { return api().unk_id(handle_); }

}  // namespace sdit

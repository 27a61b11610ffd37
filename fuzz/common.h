#pragma once
// Shared by the libFuzzer targets (fuzz/fuzz_<reader>.cpp, see fuzz/README.md): the oracle every
// target applies, checks on what a reader returns, and the seed-writing hook.
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "io/pickle.h"
#include "io/state_dict.h"
#include "util/error.h"

namespace sdit::fuzz {

// Each target defines this: writes small valid inputs into `dir`. common.cpp calls it when
// the binary runs with SPARSEDIT_FUZZ_WRITE_SEEDS=<dir> (then exits); scripts/fuzz.sh seeds so.
void write_seeds(const std::string& dir);
void write_seed(const std::string& dir, const std::string& name, const std::string& bytes);

[[noreturn]] void unexpected(const char* what, const std::string& detail);

// Runs one reader call. sdit::Error is the expected answer to bad input; any other exception
// (a c10::Error from a libtorch check the reader should have made first, std::bad_alloc, ...)
// means a missing check, so it aborts and libFuzzer keeps the input as a crash.
template <typename F>
void run_reader(F&& f) {
  try {
    f();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    unexpected("an exception other than sdit::Error", e.what());
  }
}

// Seed material for the torch.save targets: a training-checkpoint-like data.pkl (nested dicts,
// argparse.Namespace, memo references, every value type) whose tensors use storage "0" (16 floats)
// and "1" (4 floats), in protocol 2 or in protocol 4's spelling (FRAME, STACK_GLOBAL, MEMOIZE).
std::string seed_checkpoint_pickle(int protocol);
std::vector<std::pair<std::string, std::string>> seed_storages();  // "0" and "1" with their bytes

// A returned tensor must lie inside its storage: reads the first and last byte of its extent in
// instrumented code, so AddressSanitizer sees a view that escapes the memory behind it.
void check_tensor(const torch::Tensor& t);
// Checks every tensor reachable from v, walking as a consumer would (per reference); returns the
// number of values walked, which the unpickler promises to bound (io/limits.h).
uint64_t check_value(const PyValue& v);
void check_state_dict(const StateDict& sd);

// The most pixels the image targets decode: small, so each input runs in milliseconds.
constexpr int64_t kFuzzMaxPixels = int64_t(1) << 20;

}  // namespace sdit::fuzz

#pragma once
// The libtorch 1.13 vs 2.x differences of c10d, for src/dist/*.cpp only (no header outside src/dist
// includes c10d; util/compat.h stays free of it). See DISTRIBUTED.md §2.
//   - 2.0 (PR #88330) moved ProcessGroupGloo/ProcessGroupNCCL from deriving c10d::ProcessGroup to
//     deriving c10d::Backend; the collectives, Options, devices and constructors are spelled the same.
//   - Recent 2.x adds Backend::shutdown() (tear down communicators before the destructor); 1.13 has none.
//   - TCPStoreOptions gained fields in 2.x: always default-construct and assign fields by name.
#ifdef SPARSEDIT_HAVE_C10D
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

namespace sdit::dist::compat {

#if TORCH_VERSION_MAJOR >= 2
using CommBackend = c10d::Backend;
#else
using CommBackend = c10d::ProcessGroup;
#endif

namespace detail {
template <typename B>
auto shutdown(B& b, int) -> decltype(b.shutdown(), void()) {
  b.shutdown();
}
template <typename B>
void shutdown(B&, long) {}
}  // namespace detail

// Backend::shutdown() where this libtorch has it (detected, not keyed on a version number); else nothing.
inline void comm_shutdown(CommBackend& b) { detail::shutdown(b, 0); }

}  // namespace sdit::dist::compat
#endif  // SPARSEDIT_HAVE_C10D

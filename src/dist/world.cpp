#include "dist/world.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "dist/buckets.h"
#include "dist/c10d_compat.h"
#include "util/error.h"

#ifdef SPARSEDIT_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SPARSEDIT_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace sdit::dist {

BuildSupport build_support() {
  BuildSupport s;
#ifdef SPARSEDIT_HAVE_C10D
  s.c10d = true;
#endif
#ifdef SPARSEDIT_HAVE_GLOO
  s.gloo = true;
#endif
#ifdef SPARSEDIT_HAVE_NCCL
  s.nccl = true;
#endif
  return s;
}

std::string StopVerdict::message() const {
  if (!stop) return "";
  std::ostringstream os;
  os << "rank " << rank;
  if (count > 1) os << " (and " << count - 1 << " more rank" << (count > 2 ? "s" : "") << ")";
  os << ": " << reason;
  return os.str();
}

struct World::Impl {
  Launch launch;
  std::string backend = "none";
  double timeout_s = kDefaultTimeoutSeconds;
  torch::Device comm_device = torch::kCPU;  // where tensors must be for the backend
  double comm_seconds = 0;
  std::string broken;  // the first collective failure; later collectives refuse to start
#ifdef SPARSEDIT_HAVE_C10D
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::CommBackend> pg;

  // A failed group is destroyed normally: Gloo closes a pair on its first timeout, so queued buckets fail
  // at once and teardown takes ~1 s (measured with 20 buckets queued), not one timeout per bucket.
  ~Impl() {
    if (!pg || !broken.empty()) return;
    try {
      compat::comm_shutdown(*pg);
    } catch (const std::exception&) {
    }
  }
#endif
};

namespace {

std::string resolve_backend(const Launch& l, const WorldOptions& o) {
  const BuildSupport s = build_support();
  if (!s.c10d)
    fail("this sparsedit was built without c10d (torch.distributed), but the launch (", l.source, ") asks for ",
         l.world_size, " ranks; rebuild against a libtorch with c10d and install libgloo-dev "
         "(docs/distributed.md), or run one process");
  std::string b = o.backend;
  if (b == "auto") b = o.device.is_cuda() ? "nccl" : "gloo";
  if (b == "gloo") {
    if (!s.gloo) fail("this sparsedit was built without ProcessGroupGloo (its libtorch lacks the gloo headers)");
  } else if (b == "nccl") {
    if (!s.nccl) fail("this sparsedit was built without ProcessGroupNCCL (a CUDA libtorch provides it)");
    if (!o.device.is_cuda()) fail("the nccl backend needs a CUDA device, got ", o.device.str());
  } else {
    fail("unknown distributed backend '", o.backend, "' (expected auto, gloo or nccl)");
  }
  return b;
}

#ifdef SPARSEDIT_HAVE_C10D
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  return line.size() > 400 ? line.substr(0, 400) + "..." : line;
}

[[noreturn]] void collective_failed(World::Impl& w, const char* op, const std::string& what) {
  std::ostringstream os;
  os << "distributed " << op << " failed on rank " << w.launch.rank << " of " << w.launch.world_size << " ("
     << w.backend << ", timeout " << w.timeout_s << " s): " << first_line(what)
     << " -- a peer rank exited or stopped responding";
  w.broken = os.str();
  throw Error(w.broken);
}

// Runs `body` (which issues collectives and waits for them) and turns a transport failure into one
// sdit::Error line; afterwards the World refuses further collectives. sdit::Errors raised by the body
// itself (a layout mismatch seen identically by all ranks) pass through unchanged.
template <typename F>
void collective(World::Impl& w, const char* op, F&& body) {
  if (!w.broken.empty()) fail("distributed ", op, " refused: an earlier collective failed (", w.broken, ")");
  const auto t0 = Clock::now();
  try {
    body();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    collective_failed(w, op, e.what_without_backtrace());
  } catch (const std::exception& e) {
    collective_failed(w, op, e.what());
  }
  w.comm_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
}

// Laid out as Python's init_process_group(init_method="env://"): under torchrun's agent every rank is a
// client of the agent's store under /worker/attempt_<n>; otherwise rank 0 serves it. Then "default_pg".
c10::intrusive_ptr<c10d::Store> rendezvous(const Launch& l, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;  // fields by name: 2.x added more
  o.port = static_cast<std::uint16_t>(l.master_port);
  o.isServer = !l.agent_store && l.rank == 0;
  o.numWorkers = static_cast<std::size_t>(l.world_size);
  o.waitWorkers = !l.agent_store;
  o.multiTenant = true;
  o.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> s = c10::make_intrusive<c10d::TCPStore>(l.master_addr, o);
  if (l.agent_store)
    s = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(l.restart_count), s);
  return c10::make_intrusive<c10d::PrefixStore>("default_pg", s);
}

#ifdef SPARSEDIT_HAVE_GLOO
bool is_loopback(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "localhost" || host == "::1";
}
#endif

c10::intrusive_ptr<compat::CommBackend> make_group(const std::string& backend, const c10::intrusive_ptr<c10d::Store>& store,
                                                   const Launch& l, std::chrono::milliseconds timeout) {
#ifdef SPARSEDIT_HAVE_GLOO
  if (backend == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // Devices as the Python binding picks them (one per GLOO_SOCKET_IFNAME entry), except that a loopback
    // master keeps all traffic on 127.0.0.1: every rank is then on this host.
    const char* ifs = std::getenv("GLOO_SOCKET_IFNAME");
    std::stringstream names(ifs ? ifs : "");
    for (std::string name; std::getline(names, name, ',');)
      if (!name.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    if (opts->devices.empty())
      opts->devices.push_back(is_loopback(l.master_addr) ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                                         : c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2 * static_cast<int>(opts->devices.size());
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, l.rank, l.world_size, opts);
  }
#endif
#ifdef SPARSEDIT_HAVE_NCCL
  if (backend == "nccl") {
    // With asynchronous error handling NCCL's watchdog ends the process when a collective outlives the
    // timeout, instead of leaving it blocked on the GPU. 1.13 reads the first name, 2.x the second.
    setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
    setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, l.rank, l.world_size, opts);
  }
#endif
  fail("distributed backend ", backend, " is not available in this build");
}

using Works = std::vector<c10::intrusive_ptr<c10d::Work>>;

torch::Tensor to_comm(const World::Impl& w, const torch::Tensor& t) {
  return t.device() == w.comm_device ? t : t.to(w.comm_device);
}

// Every rank passes a tensor of the same shape; returns [world, shape...] on t's device.
torch::Tensor gather_fixed(World::Impl& w, const torch::Tensor& t) {
  std::vector<torch::Tensor> in{to_comm(w, t.contiguous())};
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < w.launch.world_size; ++r) out[0].push_back(torch::empty_like(in[0]));
  w.pg->allgather(out, in)->wait();
  return torch::stack(out[0]).to(t.device());
}

// One collective per bucket, all in flight at once (Gloo works on several concurrently), then copy back.
// If a wait throws, the remaining buckets fail at once too: Gloo closes the pair on its first error.
template <typename Issue>
void bucketed(World::Impl& w, const std::vector<torch::Tensor>& tensors, int64_t cap, Issue issue) {
  const auto plan = plan_buckets(tensors, cap);
  std::vector<std::vector<torch::Tensor>> io;
  io.reserve(plan.size());  // the works hold the tensors; no reallocation under them
  Works works;
  for (const auto& b : plan) {
    io.push_back({to_comm(w, flatten_bucket(tensors, b))});
    works.push_back(issue(io.back()));
  }
  // In issue order: bucket k is copied back while the later buckets are still being reduced.
  for (size_t k = 0; k < plan.size(); ++k) {
    works[k]->wait();
    const auto& first = tensors[plan[k][0]];
    const auto& flat = io[k][0];
    if (plan[k].size() == 1 && flat.data_ptr() == first.data_ptr()) continue;  // reduced in place
    unflatten_bucket(flat.to(first.device()), tensors, plan[k]);
  }
}

c10d::ReduceOp reduce_op(Reduce op) {
  switch (op) {
    case Reduce::Max:
      return c10d::ReduceOp::MAX;
    case Reduce::Min:
      return c10d::ReduceOp::MIN;
    default:
      return c10d::ReduceOp::SUM;
  }
}

// "Float rows [*, 3, 4]" from an all_gather_rows metadata row (rows, dtype, dim, trailing sizes).
std::string rows_str(const torch::Tensor& meta) {
  std::ostringstream os;
  os << c10::toString(static_cast<c10::ScalarType>(meta[1].item<int64_t>())) << " rows [*";
  for (int64_t d = 1; d < meta[2].item<int64_t>(); ++d) os << ", " << meta[2 + d].item<int64_t>();
  os << "]";
  return os.str();
}

#endif  // SPARSEDIT_HAVE_C10D

#ifndef SPARSEDIT_HAVE_C10D
[[noreturn]] void no_transport() { fail("internal: a distributed World without a transport"); }
#endif

}  // namespace

World::World() : impl_(std::make_shared<Impl>()) {}

World World::connect(const Launch& launch, const WorldOptions& o) {
  if (!(o.timeout_s > 0)) fail("distributed timeout must be positive, got ", o.timeout_s, " s");
  World w;
  w.impl_->launch = launch;
  w.impl_->timeout_s = o.timeout_s;
  if (!launch.distributed()) return w;
  const std::string backend = resolve_backend(launch, o);
#ifdef SPARSEDIT_HAVE_C10D
  Impl& im = *w.impl_;
  im.backend = backend;
  im.comm_device = backend == "nccl" ? o.device : torch::Device(torch::kCPU);
  try {
    im.store = rendezvous(launch, to_ms(o.timeout_s));
    im.pg = make_group(backend, im.store, launch, to_ms(o.timeout_s));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const auto* ce = dynamic_cast<const c10::Error*>(&e);
    fail("distributed rendezvous failed on rank ", launch.rank, " of ", launch.world_size, " (", launch.source,
         ", store at ", launch.master_addr, ":", launch.master_port, ", timeout ", o.timeout_s,
         " s): ", first_line(ce ? ce->what_without_backtrace() : e.what()),
         " -- not every rank joined in time, or the store address is unreachable or its port taken");
  }
#endif
  return w;
}

int World::rank() const { return impl_->launch.rank; }
int World::size() const { return impl_->launch.world_size; }
int World::local_rank() const { return impl_->launch.local_rank; }
int World::local_size() const { return impl_->launch.local_world_size; }
const Launch& World::launch() const { return impl_->launch; }
const std::string& World::backend() const { return impl_->backend; }
double World::timeout_s() const { return impl_->timeout_s; }
double World::comm_seconds() const { return impl_->comm_seconds; }

std::string World::describe() const {
  const Launch& l = impl_->launch;
  if (!l.distributed()) return "1 process";
  std::ostringstream os;
  os << "rank " << l.rank << " of " << l.world_size << " (local " << l.local_rank << " of " << l.local_world_size
     << "), " << impl_->backend << ", " << l.source << ", store " << l.master_addr << ":" << l.master_port
     << (l.agent_store ? " (launcher's)" : " (rank 0's)");
  return os.str();
}

void World::broadcast(std::vector<torch::Tensor>& tensors, int root) const {
  if (root < 0 || root >= size()) fail("broadcast root ", root, " is outside a world of ", size());
  if (!is_distributed()) return;
  expect_same(layout_hash(tensors), "the broadcast tensor list (count, dtypes and shapes)");
#ifdef SPARSEDIT_HAVE_C10D
  Impl& w = *impl_;
  collective(w, "broadcast", [&] {
    bucketed(w, tensors, kDefaultBucketBytes, [&](std::vector<torch::Tensor>& io) {
      c10d::BroadcastOptions bo;
      bo.rootRank = root;
      return w.pg->broadcast(io, bo);
    });
  });
#else
  no_transport();
#endif
}

void World::allreduce_sum(std::vector<torch::Tensor>& tensors, int64_t bucket_bytes) const {
  if (!is_distributed()) return;
#ifdef SPARSEDIT_HAVE_C10D
  Impl& w = *impl_;
  collective(w, "allreduce", [&] {
    bucketed(w, tensors, bucket_bytes, [&](std::vector<torch::Tensor>& io) { return w.pg->allreduce(io); });
  });
#else
  no_transport();
#endif
}

std::vector<double> World::allreduce(std::vector<double> values, Reduce op) const {
  if (!is_distributed() || values.empty()) return values;
#ifdef SPARSEDIT_HAVE_C10D
  Impl& w = *impl_;
  collective(w, "allreduce", [&] {
    std::vector<torch::Tensor> io{to_comm(w, torch::tensor(values, torch::kDouble))};
    c10d::AllreduceOptions ao;
    ao.reduceOp = reduce_op(op);
    w.pg->allreduce(io, ao)->wait();
    const auto r = io[0].to(torch::kCPU);
    std::memcpy(values.data(), r.data_ptr<double>(), values.size() * sizeof(double));
  });
  return values;
#else
  no_transport();
#endif
}

double World::allreduce(double value, Reduce op) const { return allreduce(std::vector<double>{value}, op)[0]; }

void World::barrier() const {
  if (!is_distributed()) return;
#ifdef SPARSEDIT_HAVE_C10D
  Impl& w = *impl_;
  collective(w, "barrier", [&] {
    if (w.backend == "gloo") {
      w.pg->barrier()->wait();
    } else {  // NCCL's barrier guesses a device; a one-element allreduce on ours is unambiguous
      std::vector<torch::Tensor> io{torch::zeros({1}, torch::TensorOptions().device(w.comm_device))};
      w.pg->allreduce(io)->wait();
    }
  });
#else
  no_transport();
#endif
}

torch::Tensor World::all_gather_rows(const torch::Tensor& rows) const {
  if (!rows.defined() || rows.dim() < 1) fail("all_gather_rows needs a tensor of rows [n, ...]");
  if (!is_distributed()) return rows;
#ifdef SPARSEDIT_HAVE_C10D
  constexpr int64_t kMeta = 12;  // rows, dtype, dim, then up to 9 trailing sizes
  if (rows.dim() > kMeta - 2) fail("all_gather_rows: at most ", kMeta - 3, " dimensions after the rows");
  Impl& w = *impl_;
  torch::Tensor result;
  collective(w, "all_gather_rows", [&] {
    auto meta = torch::full({kMeta}, -1, torch::kLong);
    meta[0] = rows.size(0);
    meta[1] = static_cast<int64_t>(rows.scalar_type());
    meta[2] = rows.dim();
    for (int64_t d = 1; d < rows.dim(); ++d) meta[2 + d] = rows.size(d);
    const auto metas = gather_fixed(w, meta);
    // Every rank sees the same table, so a mismatch fails everywhere with the same message.
    for (int r = 1; r < size(); ++r)
      if (!torch::equal(metas[r].slice(0, 1), metas[0].slice(0, 1)))
        fail("all_gather_rows: rank ", r, " passes ", rows_str(metas[r]), " but rank 0 passes ", rows_str(metas[0]));
    const auto counts = metas.select(1, 0);
    const int64_t most = counts.max().item<int64_t>();
    auto sizes = rows.sizes().vec();
    sizes[0] = 0;
    if (most == 0) {
      result = torch::empty(sizes, rows.options());
      return;
    }
    sizes[0] = most;
    auto padded = torch::zeros(sizes, rows.options());
    padded.narrow(0, 0, rows.size(0)).copy_(rows);
    const auto all = gather_fixed(w, padded);
    std::vector<torch::Tensor> parts;
    for (int r = 0; r < size(); ++r) parts.push_back(all[r].narrow(0, 0, counts[r].item<int64_t>()));
    result = torch::cat(parts);
  });
  return result;
#else
  no_transport();
#endif
}

StopVerdict World::agree_stop(const std::string& reason) const {
  StopVerdict v;
  if (!is_distributed()) {
    if (!reason.empty()) v = StopVerdict{true, rank(), 1, reason};
    return v;
  }
  // One collective: each rank's flag and reason as a fixed 256-byte row; every rank reads the same table.
  constexpr int64_t kRow = 256;
  auto row = torch::zeros({1, kRow}, torch::kByte);
  if (!reason.empty()) {
    row[0][0] = 1;
    const size_t n = std::min<size_t>(reason.size(), kRow - 1);
    std::memcpy(row.data_ptr<uint8_t>() + 1, reason.data(), n);
  }
  const auto table = all_gather_rows(row).contiguous();
  for (int r = 0; r < size(); ++r) {
    const uint8_t* p = table.data_ptr<uint8_t>() + r * kRow;
    if (!p[0]) continue;
    if (v.count++ == 0) {
      v.stop = true;
      v.rank = r;
      v.reason.assign(reinterpret_cast<const char*>(p + 1), strnlen(reinterpret_cast<const char*>(p + 1), kRow - 1));
    }
  }
  return v;
}

void World::expect_same(uint64_t value, const std::string& what) const {
  if (!is_distributed()) return;
  int64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  const auto all = all_gather_rows(torch::full({1, 1}, bits, torch::kLong)).reshape({-1});
  std::ostringstream differ;
  for (int r = 1; r < size(); ++r)
    if (all[r].item<int64_t>() != all[0].item<int64_t>()) differ << (differ.tellp() > 0 ? ", " : "") << r;
  if (differ.tellp() > 0) fail("distributed: ", what, " differs between rank 0 and rank(s) ", differ.str());
}

void sum_gradients(const World& world, const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  if (!world.is_distributed()) return;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (!p.requires_grad()) continue;
    torch::Tensor q = p;  // a handle: setting its gradient sets p's
    if (!q.grad().defined()) q.mutable_grad() = torch::zeros_like(q);
    grads.push_back(p.grad());
  }
  world.allreduce_sum(grads, bucket_bytes);
}

}  // namespace sdit::dist

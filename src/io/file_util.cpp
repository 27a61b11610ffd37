#include "io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace sdit {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot stat '", path, "': ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("'", path, "' is not a regular file");
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("cannot memory-map '", path, "': ", std::strerror(e));
    }
    m->data_ = static_cast<uint8_t*>(p);
    m->mapped_ = true;
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  return m;
}

std::shared_ptr<MappedFile> MappedFile::from_memory(const std::string& name, const void* data, size_t size) {
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = name;
  m->size_ = size;
  if (size > 0) {
    void* p = nullptr;
    if (::posix_memalign(&p, 4096, size) != 0) fail("out of memory holding ", size, " bytes of '", name, "'");
    std::memcpy(p, data, size);
    m->data_ = static_cast<uint8_t*>(p);
  }
  return m;
}

MappedFile::~MappedFile() {
  if (data_ && mapped_) ::munmap(data_, size_);
  else std::free(data_);
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  tmp_ = path + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create '", tmp_, "' (writing '", path, "'): ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  put(offset_, data, n);
  offset_ += n;
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t n) {
  if (offset + n > offset_) fail("internal: write_at beyond the end of '", tmp_, "'");
  put(offset, data, n);
}

void AtomicFile::put(uint64_t offset, const void* data, size_t n) {
  if (committed_) fail("internal: write to '", path_, "' after commit");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    // Linux caps a single write at ~2 GiB; loop so multi-GB checkpoints are written whole.
    const size_t chunk = n < (size_t(1) << 30) ? n : (size_t(1) << 30);
    const ssize_t w = ::pwrite(fd_, p, chunk, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write to '", tmp_, "' failed: ", std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void AtomicFile::commit() {
  if (committed_) return;
  if (::fsync(fd_) != 0) fail("fsync of '", tmp_, "' failed: ", std::strerror(errno));
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail("closing '", tmp_, "' failed: ", std::strerror(errno));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail("cannot rename '", tmp_, "' to '", path_, "': ", std::strerror(errno));
  committed_ = true;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '", path, "'");
  std::ostringstream os;
  os << f.rdbuf();
  if (f.bad()) fail("error reading '", path, "'");
  return os.str();
}

}  // namespace sdit

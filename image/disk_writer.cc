#include "image/disk_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::image {

absl::StatusOr<DiskWriter> DiskWriter::Create(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("creating \"", path, "\""));
  return DiskWriter(fd, path);
}

DiskWriter::DiskWriter(int fd, std::string path)
    : fd_(fd), path_(std::move(path)), hasher_(std::make_unique<Sha256Hasher>()) {}

DiskWriter::DiskWriter(DiskWriter&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      offset_(other.offset_),
      hasher_(std::move(other.hasher_)) {}

DiskWriter::~DiskWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status DiskWriter::Write(std::string_view chunk) {
  hasher_->Update(chunk);
  constexpr size_t kBlock = 4096;
  while (!chunk.empty()) {
    std::string_view block = chunk.substr(0, kBlock);
    chunk.remove_prefix(block.size());
    if (block.size() == kBlock && block.find_first_not_of('\0') == std::string_view::npos) {
      offset_ += block.size();  // A hole.
      continue;
    }
    VMLET_RETURN_IF_ERROR(WriteAt(block));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> DiskWriter::Finish() {
  if (::ftruncate(fd_, static_cast<off_t>(offset_)) != 0 || ::fsync(fd_) != 0) {
    return ErrnoToStatus(errno, StrCat("finishing \"", path_, "\""));
  }
  ::close(std::exchange(fd_, -1));
  return hasher_->Finish();
}

absl::Status DiskWriter::WriteAt(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, StrCat("writing \"", path_, "\""));
    offset_ += static_cast<uint64_t>(n);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace vmlet::image

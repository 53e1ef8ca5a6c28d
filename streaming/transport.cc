#include "streaming/transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/status.h"

namespace vmlet::streaming {

FdTransport::FdTransport(int fd, std::string prefix) : fd_(fd), prefix_(std::move(prefix)) {}

FdTransport::~FdTransport() { ::close(fd_); }

absl::StatusOr<size_t> FdTransport::Read(char* buffer, size_t size) {
  if (!prefix_.empty()) {
    size_t n = std::min(size, prefix_.size());
    std::memcpy(buffer, prefix_.data(), n);
    prefix_.erase(0, n);
    return n;
  }
  while (true) {
    ssize_t n = ::read(fd_, buffer, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    // A connection reset by the peer ends the stream like a close does.
    if (errno == ECONNRESET) return 0;
    return ErrnoToStatus(errno, "reading from the streaming connection");
  }
}

absl::Status FdTransport::Write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "writing to the streaming connection");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

void FdTransport::Shutdown() { ::shutdown(fd_, SHUT_RDWR); }

}  // namespace vmlet::streaming

#include "cmd/vmletd/socket_activation.h"

#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/logging.h"

namespace vmlet {
namespace {

constexpr Logger kLog("vmletd");

// Non-blocking, so that a connection that went away between poll and
// accept cannot block the loop (and Stop) in accept.
int NonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

}  // namespace

int ActivatedSocket(const std::string& path) {
  const int count = sd_listen_fds(/*unset_environment=*/0);
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + count; ++fd) {
    if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, path.c_str(), 0) > 0) return fd;
  }
  return -1;
}

ActivatedListener::ActivatedListener(int listen_fd, grpc::Server* server)
    : listen_fd_(NonBlocking(listen_fd)),
      stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      server_(server),
      thread_([this] { Run(); }) {}

ActivatedListener::~ActivatedListener() {
  Stop();
  ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void ActivatedListener::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof(one));
  thread_.join();
}

void ActivatedListener::Run() {
  pollfd fds[2] = {{.fd = listen_fd_, .events = POLLIN, .revents = 0},
                   {.fd = stop_fd_, .events = POLLIN, .revents = 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      kLog.Error("socket activation: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        kLog.Warning("socket activation: accept: {}", std::strerror(errno));
      }
      continue;
    }
    // gRPC owns the descriptor from here on.
    grpc::AddInsecureChannelFromFd(server_, fd);
  }
}

}  // namespace vmlet

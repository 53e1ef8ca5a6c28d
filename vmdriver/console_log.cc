#include "vmdriver/console_log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::vmdriver {
namespace {

constexpr Logger kLog("console");

constexpr size_t kReadBufferBytes = 64 * 1024;
// What Stop still reads after the wake-up, so that a guest's last words are
// logged without letting a chatty guest delay Stop.
constexpr size_t kMaxDrainOnStopBytes = 1024 * 1024;

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::StatusOr<int> OpenLog(const std::string& path) {
  VMLET_RETURN_IF_ERROR(MakeDirs(DirName(path)));
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening \"", path, "\""));
  return fd;
}

int PollTimeoutMillis(absl::Duration timeout) {
  return static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(timeout, absl::Milliseconds(1))));
}

}  // namespace

std::string FormatCriTimestamp(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", time, absl::UTCTimeZone());
}

void CriLogFormatter::Append(std::string_view bytes, absl::Time now, std::string* out) {
  while (!bytes.empty()) {
    size_t newline = bytes.find('\n');
    size_t line_bytes = newline == std::string_view::npos ? bytes.size() : newline;
    size_t room = kMaxLineBytes - pending_.size();
    if (line_bytes > room) {
      // The line grows past the limit: its first kMaxLineBytes go out now.
      pending_.append(bytes.substr(0, room));
      bytes.remove_prefix(room);
      Emit('P', now, out);
      continue;
    }
    pending_.append(bytes.substr(0, line_bytes));
    bytes.remove_prefix(line_bytes);
    if (newline != std::string_view::npos) {
      bytes.remove_prefix(1);
      Emit('F', now, out);
    }
  }
}

void CriLogFormatter::Flush(absl::Time now, std::string* out) {
  if (!pending_.empty()) Emit('F', now, out);
}

void CriLogFormatter::Emit(char tag, absl::Time now, std::string* out) {
  StrAppend(out, FormatCriTimestamp(now), " stdout ", tag, " ", pending_, "\n");
  pending_.clear();
}

absl::StatusOr<std::unique_ptr<ConsoleLog>> ConsoleLog::Start(std::string socket_path,
                                                              std::string log_path) {
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(StrCat("console socket path \"", socket_path,
                                             "\" is empty or longer than ",
                                             sizeof(sockaddr_un{}.sun_path) - 1, " bytes"));
  }
  int log_fd = -1;
  if (!log_path.empty()) {
    absl::StatusOr<int> opened = OpenLog(log_path);
    if (!opened.ok()) return Annotate(opened.status(), "opening console log");
    log_fd = *opened;
  }
  int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    int saved_errno = errno;
    if (log_fd >= 0) ::close(log_fd);
    return ErrnoToStatus(saved_errno, "creating console wake-up eventfd");
  }
  std::unique_ptr<ConsoleLog> console(
      new ConsoleLog(std::move(socket_path), std::move(log_path), wake_fd, log_fd));
  console->thread_ = std::thread(&ConsoleLog::Run, console.get());
  return console;
}

ConsoleLog::ConsoleLog(std::string socket_path, std::string log_path, int wake_fd, int log_fd)
    : socket_path_(std::move(socket_path)),
      log_path_(std::move(log_path)),
      wake_fd_(wake_fd),
      log_fd_(log_fd) {}

ConsoleLog::~ConsoleLog() {
  Stop();
  if (log_fd_ >= 0) ::close(log_fd_);
  ::close(wake_fd_);
}

absl::Status ConsoleLog::Reopen() {
  if (log_path_.empty()) return absl::OkStatus();
  absl::StatusOr<int> opened = OpenLog(log_path_);
  if (!opened.ok()) return Annotate(opened.status(), "reopening console log");
  std::lock_guard<std::mutex> lock(log_mu_);
  if (log_fd_ >= 0) ::close(log_fd_);
  log_fd_ = *opened;
  write_failing_ = false;
  return absl::OkStatus();
}

void ConsoleLog::SetTap(Tap tap) {
  std::lock_guard<std::mutex> lock(tap_mu_);
  if (tap) {
    readers_[0] = std::move(tap);
  } else {
    readers_.erase(0);
  }
}

int ConsoleLog::AddReader(Tap reader) {
  std::lock_guard<std::mutex> lock(tap_mu_);
  int handle = next_reader_++;
  readers_[handle] = std::move(reader);
  return handle;
}

void ConsoleLog::RemoveReader(int handle) {
  if (handle <= 0) return;  // 0 belongs to SetTap.
  std::lock_guard<std::mutex> lock(tap_mu_);
  readers_.erase(handle);
}

bool ConsoleLog::connected() {
  std::lock_guard<std::mutex> lock(conn_mu_);
  return conn_fd_ >= 0;
}

void ConsoleLog::SetConnection(int fd) {
  std::lock_guard<std::mutex> lock(conn_mu_);
  conn_fd_ = fd;
}

absl::Status ConsoleLog::Write(std::string_view bytes) {
  // One writer at a time, so that each call's bytes stay together.
  std::lock_guard<std::mutex> write_lock(write_mu_);
  int fd;
  {
    std::lock_guard<std::mutex> lock(conn_mu_);
    if (conn_fd_ < 0) {
      return absl::FailedPreconditionError(
          StrCat("console of \"", socket_path_,
                 "\" not connected: the VM is not running or its console socket is not up yet"));
    }
    // A descriptor of our own: the console thread may close its one on a
    // reconnect meanwhile without this write landing on a reused number,
    // and without waiting for a guest that is slow to take input.
    fd = ::fcntl(conn_fd_, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return ErrnoToStatus(errno, StrCat("duplicating console \"", socket_path_, "\""));
  }
  ScopeGuard close_fd([fd] { ::close(fd); });
  absl::Time deadline = absl::Now() + kWriteTimeout;
  while (!bytes.empty()) {
    // MSG_NOSIGNAL: a console closed under us is an EPIPE, not a SIGPIPE.
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) {
      return absl::FailedPreconditionError(
          StrCat("console of \"", socket_path_, "\" not connected: it closed while writing"));
    }
    if (errno != EAGAIN) {
      return ErrnoToStatus(errno, StrCat("writing to console \"", socket_path_, "\""));
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::UnavailableError(StrCat("writing to console \"", socket_path_,
                                           "\": the guest took no input for ",
                                           absl::FormatDuration(kWriteTimeout)));
    }
    pollfd out = {fd, POLLOUT, 0};
    (void)::poll(&out, 1, PollTimeoutMillis(left));
  }
  return absl::OkStatus();
}

void ConsoleLog::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  // Cannot fail short of a counter overflow; the eventfd then stays readable.
  while (::write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  thread_.join();
}

void ConsoleLog::Run() {
  kLog.Debug("copying console \"{}\" to \"{}\"", socket_path_, log_path_);
  absl::Duration backoff = kMinBackoff;
  for (;;) {
    int fd = Connect();
    if (fd >= 0) {
      SetConnection(fd);
      ScopeGuard close_fd([this, fd] {
        SetConnection(-1);
        ::close(fd);
      });
      uint64_t before = bytes_read_.load();
      bool stopped = Pump(fd);
      FlushPartialLine();
      if (stopped) return;
      kLog.Debug("console \"{}\" closed after {} bytes", socket_path_, bytes_read_.load() - before);
      // A connection that carried data was a real one: reconnect at once.
      // One that closed empty is retried with backoff, lest we spin.
      if (bytes_read_.load() != before) {
        backoff = kMinBackoff;
        continue;
      }
    }
    if (WaitForStop(backoff)) return;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

int ConsoleLog::Connect() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    kLog.Warning("creating a socket for console \"{}\": {}", socket_path_, std::strerror(errno));
    return -1;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());  // Length checked.
  // Non-blocking: a full backlog (QEMU busy with another client) fails with
  // EAGAIN instead of blocking where Stop cannot reach us.
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    // ENOENT (QEMU not yet or no longer there), ECONNREFUSED (not listening)
    // and EAGAIN are the normal reasons; all are retried.
    kLog.Debug("connecting to console \"{}\": {}", socket_path_, std::strerror(errno));
    ::close(fd);
    return -1;
  }
  kLog.Debug("connected to console \"{}\"", socket_path_);
  return fd;
}

bool ConsoleLog::Pump(int fd) {
  char buffer[kReadBufferBytes];
  pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      kLog.Error("waiting for console \"{}\": {}", socket_path_, std::strerror(errno));
      return false;
    }
    if (fds[1].revents != 0) {
      DrainAvailable(fd);
      return true;
    }
    if (fds[0].revents == 0) continue;
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      Consume(std::string_view(buffer, static_cast<size_t>(n)));
    } else if (n == 0) {
      return false;
    } else if (errno != EINTR && errno != EAGAIN) {
      kLog.Debug("reading console \"{}\": {}", socket_path_, std::strerror(errno));
      return false;
    }
  }
}

void ConsoleLog::DrainAvailable(int fd) {
  char buffer[kReadBufferBytes];
  size_t drained = 0;
  while (drained < kMaxDrainOnStopBytes) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    Consume(std::string_view(buffer, static_cast<size_t>(n)));
    drained += static_cast<size_t>(n);
  }
}

bool ConsoleLog::WaitForStop(absl::Duration timeout) {
  pollfd wake = {wake_fd_, POLLIN, 0};
  int rc = ::poll(&wake, 1, PollTimeoutMillis(timeout));
  // On EINTR the caller simply retries a connection early.
  return rc > 0;
}

void ConsoleLog::Consume(std::string_view bytes) {
  bytes_read_.fetch_add(bytes.size());
  {
    std::lock_guard<std::mutex> lock(tap_mu_);
    for (auto& [handle, reader] : readers_) reader(bytes);
  }
  if (log_path_.empty()) return;
  std::string lines;
  formatter_.Append(bytes, absl::Now(), &lines);
  WriteLog(lines);
}

void ConsoleLog::FlushPartialLine() {
  if (log_path_.empty()) return;
  std::string lines;
  formatter_.Flush(absl::Now(), &lines);
  WriteLog(lines);
}

void ConsoleLog::WriteLog(std::string_view lines) {
  if (lines.empty()) return;
  std::lock_guard<std::mutex> lock(log_mu_);
  while (!lines.empty()) {
    ssize_t n = ::write(log_fd_, lines.data(), lines.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      // Lines are dropped rather than buffered: the console must keep draining.
      if (!write_failing_) {
        kLog.Error("writing console log \"{}\": {}; dropping console output until it recovers",
                   log_path_, std::strerror(errno));
      }
      write_failing_ = true;
      return;
    }
    lines.remove_prefix(static_cast<size_t>(n));
  }
  if (write_failing_) kLog.Info("writing console log \"{}\" again", log_path_);
  write_failing_ = false;
}

}  // namespace vmlet::vmdriver

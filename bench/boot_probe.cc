#include "bench/boot_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::bench {
namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;

// Milliseconds until `deadline` for poll(2), rounded up; 0 once it passed.
int PollMillisUntil(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

Clock::time_point DeadlineAfter(absl::Duration timeout) {
  return Clock::now() + absl::ToChronoMilliseconds(timeout);
}

// Whether `marker` occurs in `text` in a match that ends after `old_size`
// (the bytes before were searched already).
bool MarkerArrived(const std::string& text, size_t old_size, const std::string& marker) {
  size_t from = old_size >= marker.size() ? old_size - marker.size() + 1 : 0;
  return text.find(marker, from) != std::string::npos;
}

// The last bytes of a console, for an error message.
std::string Tail(const std::string& text) {
  constexpr size_t kTail = 2000;
  return text.size() <= kTail ? text : text.substr(text.size() - kTail);
}

// Runs in the forked child, where only async-signal-safe calls are allowed:
// dies with the benchmark, takes `in` and `out` as stdin and stdout (stderr
// is the benchmark's) and execs `argv`.
[[noreturn]] void ExecChild(pid_t parent, int in, int out, char* const* argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0) ::_exit(127);
  ::execv(argv[0], argv);
  static constexpr char kMessage[] = "boot_bench: execv of QEMU failed\n";
  (void)!::write(2, kMessage, sizeof(kMessage) - 1);
  ::_exit(127);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LogWatcher>> LogWatcher::Start(std::string path, std::string marker,
                                                              absl::Duration timeout) {
  int inotify_fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_fd < 0) return ErrnoToStatus(errno, "inotify_init1");
  ScopeGuard close_inotify([inotify_fd] { ::close(inotify_fd); });
  if (::inotify_add_watch(inotify_fd, path.c_str(), IN_MODIFY) < 0) {
    return ErrnoToStatus(errno, StrCat("watching \"", path, "\" with inotify"));
  }
  int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) return ErrnoToStatus(errno, "eventfd");
  close_inotify.Dismiss();
  std::unique_ptr<LogWatcher> watcher(new LogWatcher(std::move(path), std::move(marker), inotify_fd,
                                                     wake_fd, DeadlineAfter(timeout)));
  watcher->thread_ = std::thread(&LogWatcher::Run, watcher.get());
  return watcher;
}

LogWatcher::LogWatcher(std::string path, std::string marker, int inotify_fd, int wake_fd,
                       Clock::time_point deadline)
    : path_(std::move(path)),
      marker_(std::move(marker)),
      inotify_fd_(inotify_fd),
      wake_fd_(wake_fd),
      deadline_(deadline) {}

LogWatcher::~LogWatcher() {
  Stop();
  ::close(inotify_fd_);
  ::close(wake_fd_);
}

void LogWatcher::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  while (::write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  thread_.join();
}

absl::StatusOr<ConsoleTimes> LogWatcher::Wait() {
  if (thread_.joinable()) thread_.join();
  VMLET_RETURN_IF_ERROR(error_);
  if (!first_byte_ || !marker_seen_) {
    return absl::DeadlineExceededError(
        StrCat("no \"", marker_, "\" in \"", path_, "\" in time; it holds:\n", Tail(text_)));
  }
  return ConsoleTimes{.first_byte = *first_byte_, .marker = *marker_seen_};
}

void LogWatcher::Run() {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error_ = ErrnoToStatus(errno, StrCat("opening \"", path_, "\""));
    return;
  }
  ScopeGuard close_fd([fd] { ::close(fd); });
  std::vector<char> buffer(kReadBufferBytes);
  for (;;) {
    // Everything appended since the last look; inotify says when to look.
    for (;;) {
      ssize_t n = ::read(fd, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error_ = ErrnoToStatus(errno, StrCat("reading \"", path_, "\""));
        return;
      }
      if (n == 0) break;
      const Clock::time_point now = Clock::now();
      if (!first_byte_) first_byte_ = now;
      const size_t old_size = text_.size();
      text_.append(buffer.data(), static_cast<size_t>(n));
      if (MarkerArrived(text_, old_size, marker_)) {
        marker_seen_ = now;
        return;
      }
    }
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int ready = ::poll(fds, 2, PollMillisUntil(deadline_));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || fds[1].revents != 0) return;  // Timed out or stopped.
    char events[4096];
    while (::read(inotify_fd_, events, sizeof(events)) > 0) {
    }
  }
}

absl::StatusOr<PlainBootTimes> BootPlainQemu(const PlainQemuOptions& options,
                                             const std::string& marker, absl::Duration timeout) {
  const std::vector<std::string> args = {options.qemu,
                                         "-machine",
                                         "pc,accel=tcg",
                                         "-m",
                                         StrCat(options.memory_mib),
                                         "-display",
                                         "none",
                                         "-no-reboot",
                                         "-kernel",
                                         options.kernel,
                                         "-initrd",
                                         options.initrd,
                                         "-append",
                                         options.cmdline,
                                         "-serial",
                                         "stdio"};
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return ErrnoToStatus(errno, "opening /dev/null");
  ScopeGuard close_null([null_fd] { ::close(null_fd); });
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe2");
  ScopeGuard close_read([&pipe_fds] { ::close(pipe_fds[0]); });

  const pid_t parent = ::getpid();
  const Clock::time_point launched = Clock::now();
  const Clock::time_point deadline = DeadlineAfter(timeout);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipe_fds[1]);
    return ErrnoToStatus(errno, "fork");
  }
  if (pid == 0) ExecChild(parent, null_fd, pipe_fds[1], argv.data());
  ::close(pipe_fds[1]);
  // The guest never powers off by itself: QEMU is always killed.
  ScopeGuard kill_qemu([pid] {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  });

  std::optional<Clock::time_point> first_byte, first_line, marker_seen;
  std::string text;
  std::vector<char> buffer(kReadBufferBytes);
  for (;;) {
    pollfd fd{.fd = pipe_fds[0], .events = POLLIN, .revents = 0};
    int ready = ::poll(&fd, 1, PollMillisUntil(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ErrnoToStatus(errno, "waiting for QEMU's console");
    if (ready == 0) {
      return absl::DeadlineExceededError(
          StrCat("plain QEMU printed no \"", marker, "\" in time; it printed:\n", Tail(text)));
    }
    ssize_t n = ::read(pipe_fds[0], buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, "reading QEMU's console");
    if (n == 0) {
      return absl::InternalError(
          StrCat("plain QEMU exited before printing \"", marker, "\"; it printed:\n", Tail(text)));
    }
    const Clock::time_point now = Clock::now();
    if (!first_byte) first_byte = now;
    const size_t old_size = text.size();
    text.append(buffer.data(), static_cast<size_t>(n));
    if (!first_line && text.find('\n', old_size) != std::string::npos) first_line = now;
    if (!marker_seen && MarkerArrived(text, old_size, marker)) marker_seen = now;
    if (first_line && marker_seen) {
      return PlainBootTimes{.first_byte = *first_byte - launched,
                            .first_line = *first_line - launched,
                            .marker = *marker_seen - launched};
    }
  }
}

}  // namespace vmlet::bench

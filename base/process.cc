#include "base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "absl/time/clock.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

extern char** environ;

namespace vmlet {
namespace {

constexpr size_t kMaxOutput = 1 << 20;

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int WaitForExit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return DecodeWaitStatus(status);
}

// Blocks SIGPIPE in the calling thread while it lives. Writing to a pipe whose
// reader has gone raises SIGPIPE at the writing thread; with the signal
// blocked it stays pending instead of killing the process (whatever its
// disposition), and the destructor consumes it before restoring the mask,
// unless one was already pending before (which is then left alone).
class SigpipeBlocker {
 public:
  SigpipeBlocker() {
    sigemptyset(&sigpipe_);
    sigaddset(&sigpipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &sigpipe_, &old_mask_);
  }
  SigpipeBlocker(const SigpipeBlocker&) = delete;
  SigpipeBlocker& operator=(const SigpipeBlocker&) = delete;
  ~SigpipeBlocker() {
    if (raised_ && !was_pending_) {
      timespec zero{.tv_sec = 0, .tv_nsec = 0};
      while (::sigtimedwait(&sigpipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }

  // Called after a write failed with EPIPE.
  void NoteRaised() { raised_ = true; }

 private:
  sigset_t sigpipe_;
  sigset_t old_mask_;
  bool was_pending_ = false;
  bool raised_ = false;
};

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Reads what is available from `fd` into `into` (up to kMaxOutput; the rest
// is drained and dropped). Closes `fd` at end of file or on an error.
void ReadSome(int& fd, std::string& into) {
  char buffer[16384];
  ssize_t n = ::read(fd, buffer, sizeof(buffer));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    CloseFd(fd);
    return;
  }
  if (into.size() < kMaxOutput) {
    into.append(buffer, std::min(static_cast<size_t>(n), kMaxOutput - into.size()));
  }
}

}  // namespace

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const ProcessOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("running a process: empty command");
  const bool feed_stdin = !options.stdin_data.empty();
  // Our ends of the pipes, and the child's ends until it has started.
  int out_read = -1, out_write = -1, err_read = -1, err_write = -1, in_read = -1, in_write = -1;
  ScopeGuard close_pipes([&] {
    for (int* fd : {&out_read, &out_write, &err_read, &err_write, &in_read, &in_write}) {
      CloseFd(*fd);
    }
  });
  auto make_pipe = [](int& read_end, int& write_end) -> absl::Status {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "creating a pipe");
    read_end = fds[0];
    write_end = fds[1];
    return absl::OkStatus();
  };
  VMLET_RETURN_IF_ERROR(make_pipe(out_read, out_write));
  if (options.separate_stderr) VMLET_RETURN_IF_ERROR(make_pipe(err_read, err_write));
  if (feed_stdin) {
    VMLET_RETURN_IF_ERROR(make_pipe(in_read, in_write));
    // Never block on a full pipe: stdout and stderr must keep draining.
    if (::fcntl(in_write, F_SETFL, O_NONBLOCK) != 0) {
      return ErrnoToStatus(errno, "making a pipe non-blocking");
    }
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  ScopeGuard destroy_actions([&] { posix_spawn_file_actions_destroy(&actions); });
  if (feed_stdin) {
    posix_spawn_file_actions_adddup2(&actions, in_read, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out_write, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, options.separate_stderr ? err_write : out_write,
                                   STDERR_FILENO);
  // The child starts with default signal handling and an empty mask (vmletd
  // blocks SIGTERM in all of its threads and ignores SIGPIPE).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  ScopeGuard destroy_attr([&] { posix_spawnattr_destroy(&attr); });
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (const std::string& entry : options.env) env.push_back(const_cast<char*>(entry.c_str()));
  env.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(),
                          options.env.empty() ? environ : env.data());
  if (rc != 0) return ErrnoToStatus(rc, StrCat("starting \"", argv[0], "\""));
  CloseFd(out_write);
  CloseFd(err_write);
  CloseFd(in_read);

  std::optional<SigpipeBlocker> sigpipe_blocker;
  if (feed_stdin) sigpipe_blocker.emplace();
  const absl::Time deadline = absl::Now() + options.timeout;
  auto kill_child = [&](absl::Status status) {
    ::kill(pid, SIGKILL);
    WaitForExit(pid);
    return status;
  };
  auto timed_out = [&] {
    return absl::DeadlineExceededError(
        StrCat("\"", argv[0], "\" did not finish within ", absl::FormatDuration(options.timeout)));
  };

  ProcessResult result;
  size_t written = 0;
  while (out_read >= 0 || err_read >= 0) {
    int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) return kill_child(timed_out());
    pollfd fds[3];
    nfds_t count = 0;
    for (int fd : {out_read, err_read}) {
      if (fd >= 0) fds[count++] = {.fd = fd, .events = POLLIN, .revents = 0};
    }
    if (in_write >= 0) fds[count++] = {.fd = in_write, .events = POLLOUT, .revents = 0};
    int ready = ::poll(fds, count, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
    if (ready < 0 && errno != EINTR) {
      return kill_child(ErrnoToStatus(errno, "waiting for a process"));
    }
    if (ready <= 0) continue;
    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == out_read) {
        ReadSome(out_read, result.output);
      } else if (fds[i].fd == err_read) {
        ReadSome(err_read, result.error_output);
      } else if (fds[i].fd == in_write) {
        const std::string& input = options.stdin_data;
        ssize_t n = ::write(in_write, input.data() + written, input.size() - written);
        if (n > 0) {
          written += static_cast<size_t>(n);
          if (written == input.size()) CloseFd(in_write);  // EOF for the child.
        } else if (n < 0 && errno == EPIPE) {
          // The child closed its stdin (or exited) before reading it all.
          sigpipe_blocker->NoteRaised();
          CloseFd(in_write);
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          CloseFd(in_write);
        }
      }
    }
  }
  CloseFd(in_write);

  // The child closed its output; it normally exits right away, but it still
  // gets no more than the deadline.
  absl::Duration pause = absl::Milliseconds(1);
  for (;;) {
    int status = 0;
    pid_t waited = ::waitpid(pid, &status, WNOHANG);
    if (waited == pid) {
      result.exit_code = DecodeWaitStatus(status);
      return result;
    }
    if (waited < 0 && errno != EINTR) return ErrnoToStatus(errno, "waiting for a process");
    if (absl::Now() >= deadline) return kill_child(timed_out());
    absl::SleepFor(std::min(pause, deadline - absl::Now()));
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
}

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  ProcessOptions options;
  options.timeout = timeout;
  return RunProcess(argv, options);
}

absl::Status RunProcessOk(const std::vector<std::string>& argv, absl::Duration timeout) {
  VMLET_ASSIGN_OR_RETURN(ProcessResult result, RunProcess(argv, timeout));
  if (result.exit_code == 0) return absl::OkStatus();
  std::string output = result.output;
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return absl::InternalError(StrCat(argv[0], " exited with code ", result.exit_code, ": ", output));
}

}  // namespace vmlet

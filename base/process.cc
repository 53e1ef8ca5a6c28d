#include "base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "absl/time/clock.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

extern char** environ;

namespace vmlet {
namespace {

constexpr size_t kMaxOutput = 1 << 20;

int WaitForExit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::Duration timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("running a process: empty command");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "creating a pipe");
  ScopeGuard close_read([&] { ::close(pipe_fds[0]); });
  bool write_open = true;
  ScopeGuard close_write([&] {
    if (write_open) ::close(pipe_fds[1]);
  });

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  ScopeGuard destroy_actions([&] { posix_spawn_file_actions_destroy(&actions); });
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  // The child starts with default signal handling and an empty mask (vmletd
  // blocks SIGTERM in all of its threads).
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
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  if (rc != 0) return ErrnoToStatus(rc, StrCat("starting \"", argv[0], "\""));
  ::close(pipe_fds[1]);
  write_open = false;

  ProcessResult result;
  absl::Time deadline = absl::Now() + timeout;
  char buffer[8192];
  for (;;) {
    int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) {
      ::kill(pid, SIGKILL);
      WaitForExit(pid);
      return absl::DeadlineExceededError(
          StrCat("\"", argv[0], "\" did not finish within ", absl::FormatDuration(timeout)));
    }
    pollfd pfd{.fd = pipe_fds[0], .events = POLLIN, .revents = 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
    if (ready < 0 && errno != EINTR) return ErrnoToStatus(errno, "waiting for a process");
    if (ready <= 0) continue;
    ssize_t n = ::read(pipe_fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child closed its output.
    if (result.output.size() < kMaxOutput) result.output.append(buffer, static_cast<size_t>(n));
  }
  result.exit_code = WaitForExit(pid);
  return result;
}

absl::Status RunProcessOk(const std::vector<std::string>& argv, absl::Duration timeout) {
  VMLET_ASSIGN_OR_RETURN(ProcessResult result, RunProcess(argv, timeout));
  if (result.exit_code == 0) return absl::OkStatus();
  std::string output = result.output;
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return absl::InternalError(StrCat(argv[0], " exited with code ", result.exit_code, ": ", output));
}

}  // namespace vmlet

#include "cmd/vmletctl/doctor_boot.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "vmdriver/accelerator.h"

namespace vmlet::ctl::doctor {
namespace {

constexpr char kPanic[] = "Kernel panic";
// How much of the console is kept: enough for the last lines.
constexpr size_t kConsoleWindow = 32 * 1024;

// The last non-empty line of `console` with escape sequences dropped, only
// printable ASCII kept and blanks trimmed; at most 160 characters.
std::string LastLine(const std::string& console) {
  std::string line, last;
  auto keep = [&] {
    const size_t first = line.find_first_not_of(' ');
    if (first != std::string::npos) {
      last = line.substr(first, line.find_last_not_of(' ') - first + 1);
    }
    line.clear();
  };
  for (size_t i = 0; i < console.size(); ++i) {
    const char c = console[i];
    if (c == '\x1b') {
      // ESC [ parameters final-byte (CSI), or ESC and one character.
      if (i + 1 < console.size() && console[i + 1] == '[') {
        for (i += 2; i < console.size() && (console[i] < 0x40 || console[i] > 0x7e); ++i) {
        }
      } else {
        ++i;
      }
    } else if (c == '\n') {
      keep();
    } else if (c >= 0x20 && c < 0x7f) {
      line.push_back(c);
    }
  }
  keep();
  return last.size() > 160 ? last.substr(0, 157) + "..." : last;
}

// Runs in the forked child, where only async-signal-safe calls are allowed:
// a process group of its own, death with the parent, default signals, the
// console on `out`; then execs `argv`.
[[noreturn]] void ExecQemu(pid_t parent, int in, int out, char* const* argv) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  struct sigaction dfl;
  ::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int signal : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(127);
  ::execv(argv[0], argv);
  static constexpr char kMessage[] = "vmletctl doctor: cannot execute QEMU\n";
  (void)!::write(2, kMessage, sizeof(kMessage) - 1);
  ::_exit(127);
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string Seconds(absl::Duration duration) {
  return fmt::format("{:.1f} s", absl::ToDoubleSeconds(duration));
}

}  // namespace

absl::StatusOr<std::string> FindKernel(const std::string& named, const std::string& boot_dir,
                                       std::string release) {
  if (!named.empty()) {
    if (::access(named.c_str(), R_OK) != 0) {
      return absl::NotFoundError(StrCat("kernel \"", named, "\": ", std::strerror(errno)));
    }
    return named;
  }
  if (release.empty()) {
    utsname name;
    if (::uname(&name) == 0) release = name.release;
  }
  const std::string running = StrCat(boot_dir, "/vmlinuz-", release);
  if (!release.empty() && ::access(running.c_str(), R_OK) == 0) return running;
  std::string newest;
  if (absl::StatusOr<std::vector<std::string>> names = ListDirectory(boot_dir); names.ok()) {
    for (const std::string& name : *names) {
      if (!name.starts_with("vmlinuz-")) continue;
      const std::string path = StrCat(boot_dir, "/", name);
      if (::access(path.c_str(), R_OK) != 0) continue;
      if (newest.empty() || ::strverscmp(name.c_str(), newest.c_str()) > 0) newest = name;
    }
  }
  if (newest.empty()) {
    return absl::NotFoundError(StrCat("no kernel to boot: neither ", running, " nor any ", boot_dir,
                                      "/vmlinuz-* is readable"));
  }
  return StrCat(boot_dir, "/", newest);
}

std::vector<std::string> BootCommand(const BootTest& test) {
  return {test.qemu,
          "-accel",
          test.kvm ? "kvm" : "tcg",
          "-m",
          "128",
          "-nographic",
          "-nodefaults",
          "-no-reboot",
          "-serial",
          "stdio",
          "-display",
          "none",
          "-kernel",
          test.kernel,
          "-append",
          "console=ttyS0 panic=-1 quiet"};
}

absl::StatusOr<BootOutcome> RunBootTest(const BootTest& test) {
  const std::vector<std::string> command = BootCommand(test);
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return ErrnoToStatus(errno, "opening /dev/null");
  ScopeGuard close_null([null_fd] { ::close(null_fd); });
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "creating a pipe");
  ScopeGuard close_read([&] { ::close(fds[0]); });

  const absl::Time start = absl::Now();
  const absl::Time deadline = start + test.timeout;
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[1]);
    return ErrnoToStatus(errno, StrCat("starting \"", test.qemu, "\""));
  }
  if (pid == 0) ExecQemu(parent, null_fd, fds[1], argv.data());
  ::setpgid(pid, pid);  // Also here, so that the group exists whoever runs first.
  ::close(fds[1]);

  BootOutcome outcome;
  bool reaped = false;
  // Whatever happened, nothing of the group outlives the check.
  ScopeGuard kill_group([&] {
    ::kill(-pid, SIGKILL);
    if (reaped) return;
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  });

  std::string console;
  char buffer[4096];
  bool eof = false;
  while (!outcome.panicked) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) break;
    pollfd fd{.fd = fds[0], .events = POLLIN, .revents = 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
    if (ready < 0 && errno != EINTR) return ErrnoToStatus(errno, "waiting for QEMU's console");
    if (ready <= 0) continue;
    const ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      eof = true;  // QEMU closed its console: it is exiting.
      break;
    }
    console.append(buffer, static_cast<size_t>(n));
    if (console.find(kPanic) != std::string::npos) outcome.panicked = true;
    if (console.size() > 2 * kConsoleWindow) console.erase(0, console.size() - kConsoleWindow);
  }
  outcome.last_line = LastLine(console);

  if (!outcome.panicked && eof) {
    // QEMU exits right after closing its output; give it until the deadline.
    for (;;) {
      int status = 0;
      const pid_t waited = ::waitpid(pid, &status, WNOHANG);
      if (waited == pid) {
        reaped = true;
        outcome.exit_code = DecodeWaitStatus(status);
        break;
      }
      if (waited < 0 && errno != EINTR) break;
      if (absl::Now() >= deadline) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  outcome.timed_out = !outcome.panicked && !reaped;
  outcome.elapsed = absl::Now() - start;
  return outcome;
}

Finding CheckKvmBoot(const BootCheck& check) {
  if (check.skip) return Info("kvm-boot", "skipped (--no-boot-test)");
  if (check.qemu.empty()) {
    return Info("kvm-boot", "not run: qemu-system-x86_64 is missing (see the qemu check)");
  }
  const bool kvm_usable = vmdriver::CheckKvm(check.kvm_device).ok();
  if (check.accelerator == Accelerator::kKvm && !kvm_usable) {
    return Info("kvm-boot", "not run: KVM cannot be used (see the kvm check)");
  }
  const bool kvm = check.accelerator != Accelerator::kTcg && kvm_usable;
  absl::StatusOr<std::string> kernel = FindKernel(check.kernel, check.boot_dir);
  if (!kernel.ok()) {
    return Warn("kvm-boot",
                StrCat("not run: ", ToStd(kernel.status().message()),
                       "; whether QEMU can boot a guest here is unknown"),
                "apt-get install linux-image-cloud-amd64, or pass --kernel FILE");
  }
  BootTest test{.qemu = check.qemu, .kernel = *kernel, .kvm = kvm, .timeout = check.timeout};
  const std::string accel = kvm ? "kvm" : "tcg";
  absl::StatusOr<BootOutcome> outcome = RunBootTest(test);
  if (!outcome.ok()) {
    return Fail("kvm-boot", StrCat("cannot run QEMU: ", ToStd(outcome.status().message())),
                "see the qemu check");
  }
  if (outcome->panicked) {
    return Ok("kvm-boot", StrCat(*kernel, " booted under -accel ", accel,
                                 " to its kernel panic (no root file system, as intended) in ",
                                 Seconds(outcome->elapsed)));
  }
  std::string what = outcome->timed_out
                         ? StrCat(*kernel, " printed no kernel panic within ",
                                  absl::ToInt64Seconds(check.timeout), " s under -accel ", accel)
                         : StrCat("QEMU exited with code ", outcome->exit_code, " before ", *kernel,
                                  " panicked under -accel ", accel);
  if (!outcome->last_line.empty()) StrAppend(&what, " (last output: \"", outcome->last_line, "\")");
  if (kvm) {
    return Fail("kvm-boot", StrCat("KVM cannot boot a guest: ", what),
                StrCat("set \"accelerator: tcg\" in ", check.config_path,
                       " (software emulation) or fix nested virtualisation"));
  }
  return Fail("kvm-boot", StrCat("QEMU cannot boot a guest: ", what),
              outcome->timed_out
                  ? "give a slow or busy machine more time (--boot-timeout SEC); if it still "
                    "hangs, reinstall QEMU (apt-get install --reinstall qemu-system-x86)"
                  : "reinstall QEMU (apt-get install --reinstall qemu-system-x86), or try another "
                    "kernel (--kernel FILE)");
}

}  // namespace vmlet::ctl::doctor

#include "bench/leftovers.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/str_util.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::bench {
namespace {

struct Registry {
  std::mutex mu;
  std::string pod_namespace;      // Guarded by mu.
  std::vector<std::string> dirs;  // Guarded by mu.
};

Registry& registry() {
  static Registry* const kRegistry = new Registry;
  return *kRegistry;
}

absl::StatusOr<std::string> Virsh(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kVirsh, "-c", kLibvirtUri};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<e2e::ExitStatus> result = e2e::RunCommand(argv, absl::Seconds(60));
  if (!result.ok()) return result.status();
  if (result->code != 0) {
    return absl::InternalError(StrCat("virsh ", args[0], " failed (exit ", result->code, ")"));
  }
  return result->output;
}

// SIGKILLs every process whose parent is this one.
void KillChildren() {
  absl::StatusOr<std::vector<std::string>> entries = ListDirectory("/proc");
  if (!entries.ok()) return;
  const std::string self = StrCat(::getpid());
  for (const std::string& entry : *entries) {
    if (entry.find_first_not_of("0123456789") != std::string::npos) continue;
    absl::StatusOr<std::string> stat = ReadFile(StrCat("/proc/", entry, "/stat"));
    if (!stat.ok()) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    std::istringstream fields(stat->substr(stat->rfind(')') + 1));
    std::string state, ppid;
    fields >> state >> ppid;
    if (ppid == self) ::kill(std::atoi(entry.c_str()), SIGKILL);
  }
}

}  // namespace

void RegisterNamespace(const std::string& pod_namespace) {
  std::lock_guard lock(registry().mu);
  registry().pod_namespace = pod_namespace;
}

void RegisterTempDir(const std::string& dir) {
  std::lock_guard lock(registry().mu);
  registry().dirs.push_back(dir);
}

absl::StatusOr<int> CleanUpLeftovers() {
  std::string pod_namespace;
  std::vector<std::string> dirs;
  {
    std::lock_guard lock(registry().mu);
    pod_namespace = registry().pod_namespace;
    dirs = registry().dirs;
  }
  absl::Status result;
  int found = 0;
  if (!pod_namespace.empty()) {
    absl::StatusOr<std::string> names = Virsh({"list", "--all", "--name"});
    if (names.ok()) {
      const std::string prefix = StrCat("vmlet-", pod_namespace, "-");
      std::istringstream lines(*names);
      for (std::string name; std::getline(lines, name);) {
        if (name.rfind(prefix, 0) != 0) continue;
        ++found;
        (void)Virsh({"destroy", name});  // Fails for a domain that is not running.
        absl::StatusOr<std::string> undefined = Virsh({"undefine", name});
        if (!undefined.ok() && result.ok()) result = undefined.status();
      }
    } else {
      result = names.status();
    }
  }
  for (const std::string& dir : dirs) {
    absl::Status removed = RemoveTree(dir);
    if (!removed.ok() && result.ok()) result = removed;
  }
  if (!result.ok()) return result;
  return found;
}

void StartSignalThread() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals] {
    int signal = 0;
    if (::sigwait(&signals, &signal) != 0) return;
    std::fprintf(stderr, "boot_bench: signal %d; cleaning up\n", signal);
    KillChildren();
    (void)CleanUpLeftovers();
    ::_exit(128 + signal);
  }).detach();
}

}  // namespace vmlet::bench

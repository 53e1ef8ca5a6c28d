#include "network/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::network {
namespace {

absl::Status BringLoopbackUp() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "opening a socket to configure loopback");
  ScopeGuard close_fd([fd] { ::close(fd); });
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) return ErrnoToStatus(errno, "reading flags of lo");
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) return ErrnoToStatus(errno, "bringing lo up");
  return absl::OkStatus();
}

// Runs `fn` on a fresh thread and returns its status.
absl::Status RunOnThread(const std::function<absl::Status()>& fn) {
  absl::Status result;
  std::thread thread([&] { result = fn(); });
  thread.join();
  return result;
}

}  // namespace

absl::Status CreateNetns(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("creating network namespace file \"", path, "\""));
  ::close(fd);
  ScopeGuard remove_file([&] { ::unlink(path.c_str()); });
  // The thread that unshares ends right after the bind mount: its
  // namespace lives on through the mount.
  VMLET_RETURN_IF_ERROR(RunOnThread([&path]() -> absl::Status {
    if (::unshare(CLONE_NEWNET) != 0) {
      return ErrnoToStatus(errno, "creating a network namespace (unshare CLONE_NEWNET)");
    }
    std::string self = StrCat("/proc/self/task/", ::gettid(), "/ns/net");
    if (::mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
      return ErrnoToStatus(errno, StrCat("pinning network namespace at \"", path, "\""));
    }
    absl::Status up = BringLoopbackUp();
    if (!up.ok()) ::umount2(path.c_str(), MNT_DETACH);
    return up;
  }));
  remove_file.Dismiss();
  return absl::OkStatus();
}

absl::Status RemoveNetns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return ErrnoToStatus(errno, StrCat("unpinning network namespace \"", path, "\""));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, StrCat("removing network namespace file \"", path, "\""));
  }
  return absl::OkStatus();
}

bool IsNetns(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == NSFS_MAGIC;
}

absl::Status RunInNetns(const std::string& path, const std::function<absl::Status()>& fn) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening network namespace \"", path, "\""));
  ScopeGuard close_fd([fd] { ::close(fd); });
  if (!IsNetns(path)) {
    return absl::FailedPreconditionError(
        StrCat("\"", path, "\" is not a network namespace: expected a pinned netns file"));
  }
  return RunOnThread([&]() -> absl::Status {
    if (::setns(fd, CLONE_NEWNET) != 0) {
      return ErrnoToStatus(errno, StrCat("joining network namespace \"", path, "\""));
    }
    return fn();
  });
}

}  // namespace vmlet::network

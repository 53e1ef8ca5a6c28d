// The checks of the node itself: vmletd's directories and socket files, the
// clock, cgroups and swap.
#include "cmd/vmletctl/doctor_checks.h"

#include <grp.h>
#include <linux/magic.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/timex.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "base/file_util.h"
#include "base/str_util.h"

namespace vmlet::ctl::doctor {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;

// "512 MiB", "1.5 GiB".
std::string Size(uint64_t bytes) {
  if (bytes >= kGiB) return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / kGiB);
  if (bytes >= kMiB) return fmt::format("{} MiB", bytes / kMiB);
  if (bytes >= kKiB) return fmt::format("{} KiB", bytes / kKiB);
  return fmt::format("{} B", bytes);
}

std::string Errno(int error) { return std::strerror(error); }

// "/var/lib" for "/var/lib/vmlet"; "/" for "/x".
std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string UserName(uid_t uid) {
  std::vector<char> buffer(16384);
  passwd entry;
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return StrCat(uid);
}

std::string GroupName(gid_t gid) {
  std::vector<char> buffer(16384);
  group entry;
  group* found = nullptr;
  if (::getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->gr_name;
  }
  return StrCat(gid);
}

std::string_view FileType(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a socket";
}

}  // namespace

Finding CheckDirectory(std::string check, const std::string& path, uint64_t fail_below,
                       uint64_t warn_below) {
  std::string key = check;  // The config key: "state_dir" for "state-dir".
  for (char& c : key) c = c == '-' ? '_' : c;
  const std::string elsewhere = StrCat("or point ", key, " in the config at another directory");
  if (path.empty() || path[0] != '/') {
    return Fail(check, StrCat(key, " \"", path, "\" is not an absolute path"),
                StrCat("set ", key, " in the config to an absolute path"));
  }
  // The directory, or the nearest existing parent that vmletd would create
  // it in.
  std::string existing = path;
  struct stat st;
  while (::stat(existing.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) {
      return Fail(check, StrCat(existing, ": ", Errno(errno)),
                  StrCat("make ", existing, " accessible to vmletd, ", elsewhere));
    }
    existing = Parent(existing);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Fail(check, StrCat(existing, " is ", FileType(st.st_mode), ", not a directory"),
                StrCat("remove ", existing, ", ", elsewhere));
  }
  std::string temp = StrCat(existing == "/" ? "" : existing, "/.vmlet-doctor-XXXXXX");
  int fd = ::mkstemp(temp.data());
  if (fd < 0) {
    const int error = errno;
    return Fail(check, StrCat("cannot create a file in ", existing, ": ", Errno(error)),
                error == EROFS
                    ? StrCat("remount its file system read-write, ", elsewhere)
                    : StrCat("make ", existing, " writable for vmletd's user (root), ", elsewhere));
  }
  ::close(fd);
  ::unlink(temp.c_str());

  std::string where = existing == path ? StrCat(path, ": writable")
                                       : StrCat(path, " does not exist yet; vmletd creates it in ",
                                                existing, ", which is writable");
  struct statvfs fs;
  if (::statvfs(existing.c_str(), &fs) != 0) {
    return Warn(check, StrCat(where, "; free space unknown: statvfs: ", Errno(errno)),
                StrCat("make sure ", existing, " has room"));
  }
  const uint64_t free = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  std::string message = StrCat(where, ", ", Size(free), " free");
  if (free < fail_below) {
    return Fail(check, StrCat(message, ", less than ", Size(fail_below), " (needed)"),
                StrCat("free space on its file system, ", elsewhere));
  }
  if (free < warn_below) {
    return Warn(check,
                StrCat(message, ", less than ", Size(warn_below),
                       ": VM images and disks will soon fill it"),
                StrCat("free space on its file system, ", elsewhere));
  }
  return Ok(check, message);
}

SocketFile InspectSocket(const std::string& path) {
  SocketFile file;
  file.path = path;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return file;
  file.exists = true;
  file.is_socket = S_ISSOCK(st.st_mode);
  file.mode = st.st_mode & 07777;
  file.owner = StrCat(UserName(st.st_uid), ":", GroupName(st.st_gid));
  if (!file.is_socket) file.kind = FileType(st.st_mode);
  return file;
}

std::string DescribeSocket(const SocketFile& file) {
  return fmt::format("{:04o} {}", file.mode, file.owner);
}

std::vector<Finding> CheckSocketFiles(const std::vector<SocketFile>& files) {
  std::vector<Finding> findings;
  for (const SocketFile& file : files) {
    if (!file.exists) continue;
    if (!file.is_socket) {
      findings.push_back(
          Fail("sockets",
               StrCat(file.path, " is ", file.kind, ", not a socket: vmletd cannot listen there"),
               StrCat("remove ", file.path,
                      " (vmletd creates its sockets), or choose another path in the config")));
    } else if ((file.mode & S_IWOTH) != 0) {
      findings.push_back(Warn(
          "sockets",
          StrCat(file.path, " is world-writable (", DescribeSocket(file),
                 "): every local user can run VMs through it"),
          StrCat("chmod 0660 ", file.path, " (vmletd makes its sockets 0660 when it starts)")));
    }
  }
  return findings;
}

Finding CheckClock() {
  timex tx;
  std::memset(&tx, 0, sizeof(tx));
  const int state = ::adjtimex(&tx);
  if (state < 0) {
    return Info("clock", StrCat("cannot read the clock's state: adjtimex: ", Errno(errno)));
  }
  if (state == TIME_ERROR || (tx.status & STA_UNSYNC) != 0) {
    return Warn("clock",
                "the system clock is not synchronised (adjtimex reports it unsynchronised): "
                "TLS to registries and the cluster's certificates need the right time",
                "enable time synchronisation: systemctl enable --now systemd-timesyncd, or "
                "apt-get install chrony");
  }
  return Ok("clock", StrCat("the system clock is synchronised (estimated error ",
                            static_cast<int64_t>(tx.esterror), " us)"));
}

Finding CheckCgroup(const std::string& cgroup_root, const std::string& pid1_comm) {
  struct statfs fs;
  if (::statfs(cgroup_root.c_str(), &fs) != 0) {
    return Warn("cgroup", StrCat("cannot look at ", cgroup_root, ": ", Errno(errno)),
                "mount the cgroup v2 hierarchy at /sys/fs/cgroup (systemd does)");
  }
  absl::StatusOr<std::string> comm = ReadFile(pid1_comm);
  std::string init = comm.ok() ? *comm : "";
  while (!init.empty() && (init.back() == '\n' || init.back() == ' ')) init.pop_back();
  const bool systemd = init == "systemd";
  const std::string driver =
      systemd ? "PID 1 is systemd: set the kubelet's cgroupDriver to systemd"
              : StrCat("PID 1 is ", init.empty() ? "unknown" : StrCat("\"", init, "\""),
                       ", not systemd: set the kubelet's cgroupDriver to cgroupfs");
  if (static_cast<uint64_t>(fs.f_type) == CGROUP2_SUPER_MAGIC) {
    return Ok("cgroup", StrCat("cgroup v2 at ", cgroup_root, "; ", driver));
  }
  struct statfs unified;
  const std::string unified_path = StrCat(cgroup_root, "/unified");
  const bool hybrid = ::statfs(unified_path.c_str(), &unified) == 0 &&
                      static_cast<uint64_t>(unified.f_type) == CGROUP2_SUPER_MAGIC;
  return Warn("cgroup",
              StrCat(cgroup_root, " is cgroup v1",
                     hybrid ? StrCat(" (hybrid: v2 only at ", unified_path, ")") : "",
                     ", which the kubelet deprecates; ", driver),
              "boot with systemd.unified_cgroup_hierarchy=1 (Debian 12's default) to use cgroup "
              "v2");
}

Finding CheckSwap(const std::string& proc_swaps) {
  absl::StatusOr<std::string> text = ReadFile(proc_swaps);
  if (!text.ok()) {
    return Info("swap", StrCat("cannot tell whether swap is on: ", ToStd(text.status().message())));
  }
  std::istringstream lines(*text);
  std::string line;
  std::getline(lines, line);  // The header.
  std::string swaps;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string name, type;
    uint64_t kib = 0;
    if (!(fields >> name >> type >> kib)) continue;
    StrAppend(&swaps, swaps.empty() ? "" : ", ", name, " (", Size(kib * kKiB), ")");
  }
  if (swaps.empty()) return Ok("swap", "no swap is on");
  return Warn("swap",
              StrCat("swap is on: ", swaps,
                     "; the kubelet refuses to start unless its failSwapOn is false"),
              "swapoff -a and remove swap from /etc/fstab, or set failSwapOn: false in the "
              "kubelet's configuration");
}

}  // namespace vmlet::ctl::doctor

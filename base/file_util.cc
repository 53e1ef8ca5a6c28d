#include "base/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "base/id.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet {
namespace {

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("writing \"", path, "\""));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, mode_t mode) {
  std::string tmp = StrCat(path, ".tmp-", GenerateId().substr(0, 12));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("creating \"", tmp, "\""));
  ScopeGuard remove_tmp([&tmp] { ::unlink(tmp.c_str()); });
  // Exactly `mode`, whatever the umask: readers may be other users (QEMU).
  absl::Status status = ::fchmod(fd, mode) == 0
                            ? WriteAll(fd, contents, tmp)
                            : ErrnoToStatus(errno, StrCat("setting the mode of \"", tmp, "\""));
  if (status.ok() && ::fsync(fd) != 0) {
    status = ErrnoToStatus(errno, StrCat("syncing \"", tmp, "\""));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = ErrnoToStatus(errno, StrCat("closing \"", tmp, "\""));
  }
  if (!status.ok()) return status;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("renaming \"", tmp, "\" to \"", path, "\""));
  }
  remove_tmp.Dismiss();
  // The rename is durable only once the directory entry is on disk.
  std::string dir = DirName(path);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoToStatus(errno, StrCat("opening \"", dir, "\""));
  int rc = ::fsync(dir_fd);
  int saved_errno = errno;
  ::close(dir_fd);
  if (rc != 0) return ErrnoToStatus(saved_errno, StrCat("syncing \"", dir, "\""));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening \"", path, "\""));
  ScopeGuard close_fd([fd] { ::close(fd); });
  std::string contents;
  char buffer[16384];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("reading \"", path, "\""));
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  return contents;
}

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("creating directory: empty path");
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, StrCat("creating directory \"", partial, "\""));
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, StrCat("checking directory \"", path, "\""));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(StrCat("\"", path, "\" exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::Status RemoveFileIfExists(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, StrCat("removing \"", path, "\""));
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code error;
  std::filesystem::remove_all(path, error);
  if (error) return ErrnoToStatus(error.value(), StrCat("removing \"", path, "\""));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return ErrnoToStatus(errno, StrCat("listing \"", path, "\""));
  ScopeGuard close_dir([dir] { ::closedir(dir); });
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace vmlet

#include "image/image_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "base/file_util.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::image {
namespace {

// What is at `relative` under the image directory, not following symlinks.
enum class Kind { kMissing, kFile, kDirectory };

// The files and directories of a layout must be what they seem: a symlink
// (or a device, a fifo) would point QEMU at something outside the image, a
// host file even. FAILED_PRECONDITION naming it.
absl::StatusOr<Kind> KindOf(const std::string& dir, const std::string& relative) {
  struct stat st;
  if (::lstat(StrCat(dir, "/", relative).c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Kind::kMissing;
    return ErrnoToStatus(errno, StrCat("image \"", dir, "\": checking ", relative));
  }
  if (S_ISREG(st.st_mode)) return Kind::kFile;
  if (S_ISDIR(st.st_mode)) return Kind::kDirectory;
  return absl::FailedPreconditionError(
      StrCat("image \"", dir, "\": ", relative, " is ",
             S_ISLNK(st.st_mode) ? "a symlink" : "not a regular file",
             ": the files of a VM image must be regular files"));
}

// Whether `relative` is a regular file; an error when it is something else
// than a file, a directory or nothing.
absl::StatusOr<bool> IsRegularFile(const std::string& dir, const std::string& relative) {
  VMLET_ASSIGN_OR_RETURN(Kind kind, KindOf(dir, relative));
  return kind == Kind::kFile;
}

}  // namespace

absl::StatusOr<std::string> DetectDiskFormat(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening disk image \"", path, "\""));
  unsigned char magic[4] = {};
  ssize_t n = ::read(fd, magic, sizeof(magic));
  ::close(fd);
  if (n == 4 && magic[0] == 'Q' && magic[1] == 'F' && magic[2] == 'I' && magic[3] == 0xfb) {
    return std::string("qcow2");
  }
  return std::string("raw");
}

absl::StatusOr<vmdriver::BootSource> ReadImageLayout(const std::string& dir) {
  vmdriver::BootSource boot;
  VMLET_ASSIGN_OR_RETURN(Kind boot_dir, KindOf(dir, "boot"));
  VMLET_ASSIGN_OR_RETURN(Kind disk_dir, KindOf(dir, "disk"));
  VMLET_ASSIGN_OR_RETURN(bool has_kernel, IsRegularFile(dir, "boot/vmlinuz"));
  if (boot_dir == Kind::kDirectory && has_kernel) {
    boot.kernel_path = StrCat(dir, "/boot/vmlinuz");
    VMLET_ASSIGN_OR_RETURN(bool has_initrd, IsRegularFile(dir, "boot/initrd"));
    if (has_initrd) boot.initrd_path = StrCat(dir, "/boot/initrd");
    VMLET_ASSIGN_OR_RETURN(bool has_cmdline, IsRegularFile(dir, "boot/cmdline"));
    if (has_cmdline) {
      VMLET_ASSIGN_OR_RETURN(std::string text, ReadFile(StrCat(dir, "/boot/cmdline")));
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      if (text.size() > 4096) {
        return absl::InvalidArgumentError(StrCat("image \"", dir, "\": boot/cmdline is ",
                                                 text.size(), " bytes: expected at most 4096"));
      }
      boot.cmdline = text;
    }
    return boot;
  }
  absl::StatusOr<std::vector<std::string>> disks = ListDirectory(StrCat(dir, "/disk"));
  if (disk_dir == Kind::kDirectory && disks.ok() && !disks->empty()) {
    if (disks->size() != 1) {
      return absl::InvalidArgumentError(StrCat("image \"", dir, "\": disk/ holds ", disks->size(),
                                               " files: expected exactly one disk image"));
    }
    VMLET_ASSIGN_OR_RETURN(Kind disk, KindOf(dir, StrCat("disk/", disks->front())));
    if (disk != Kind::kFile) {
      return absl::FailedPreconditionError(StrCat("image \"", dir, "\": disk/", disks->front(),
                                                  " is a directory: expected a disk image file"));
    }
    boot.disk_path = StrCat(dir, "/disk/", disks->front());
    VMLET_ASSIGN_OR_RETURN(boot.disk_format, DetectDiskFormat(boot.disk_path));
    return boot;
  }
  return absl::FailedPreconditionError(
      StrCat("image \"", dir,
             "\" is not a VM image: expected disk/<file> (qcow2 or raw) or boot/vmlinuz with "
             "optional boot/initrd and boot/cmdline"));
}

}  // namespace vmlet::image

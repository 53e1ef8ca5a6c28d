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

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
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
  const std::string kernel = StrCat(dir, "/boot/vmlinuz");
  if (IsRegularFile(kernel)) {
    boot.kernel_path = kernel;
    if (IsRegularFile(StrCat(dir, "/boot/initrd"))) boot.initrd_path = StrCat(dir, "/boot/initrd");
    absl::StatusOr<std::string> cmdline = ReadFile(StrCat(dir, "/boot/cmdline"));
    if (cmdline.ok()) {
      std::string text = *cmdline;
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
  if (disks.ok() && !disks->empty()) {
    if (disks->size() != 1) {
      return absl::InvalidArgumentError(StrCat("image \"", dir, "\": disk/ holds ", disks->size(),
                                               " files: expected exactly one disk image"));
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

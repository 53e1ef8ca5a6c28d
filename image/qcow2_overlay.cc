#include "image/qcow2_overlay.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/id.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::image {
namespace {

// The image layout (docs/interop/qcow2.txt in QEMU), one cluster each:
//   0: header, header extensions, backing file name
//   1: refcount table (one entry: the refcount block)
//   2: refcount block (16-bit refcounts of clusters 0 .. 3 + L1 clusters)
//   3: L1 table, all zero (nothing allocated: every read goes to the
//      backing file), as many clusters as it needs
constexpr uint32_t kClusterBits = 16;
constexpr uint64_t kClusterSize = uint64_t{1} << kClusterBits;
constexpr uint64_t kRefcountTableOffset = 1 * kClusterSize;
constexpr uint64_t kRefcountBlockOffset = 2 * kClusterSize;
constexpr uint64_t kL1TableOffset = 3 * kClusterSize;
// One L1 entry maps one L2 table of cluster_size / 8 entries.
constexpr uint64_t kBytesPerL1Entry = kClusterSize * (kClusterSize / 8);
// QEMU refuses L1 tables above 32 MiB (2 PiB of virtual disk here).
constexpr uint64_t kMaxL1Bytes = uint64_t{32} << 20;
constexpr uint32_t kHeaderLength = 112;  // Through compression_type, padded to 8.
constexpr uint32_t kBackingFormatExtension = 0xE2792ACA;
constexpr size_t kMaxBackingNameLength = 1023;
constexpr unsigned char kQcow2Magic[4] = {'Q', 'F', 'I', 0xfb};

void PutBe16(std::vector<unsigned char>& buf, size_t offset, uint16_t value) {
  buf[offset] = static_cast<unsigned char>(value >> 8);
  buf[offset + 1] = static_cast<unsigned char>(value);
}

void PutBe32(std::vector<unsigned char>& buf, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) buf[offset + i] = static_cast<unsigned char>(value >> (24 - 8 * i));
}

void PutBe64(std::vector<unsigned char>& buf, size_t offset, uint64_t value) {
  for (int i = 0; i < 8; ++i) buf[offset + i] = static_cast<unsigned char>(value >> (56 - 8 * i));
}

uint64_t GetBe64(const unsigned char* p) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | p[i];
  return value;
}

uint64_t RoundUp(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes `data` at `offset` entirely.
absl::Status PwriteAll(int fd, const unsigned char* data, size_t size, uint64_t offset,
                       const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("writing \"", path, "\""));
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

// The first three clusters of the overlay; the L1 table after them is zero
// and made by extending the file.
std::vector<unsigned char> Qcow2Metadata(const std::string& backing_path,
                                         const std::string& backing_format, uint64_t virtual_size,
                                         uint32_t l1_size, uint64_t l1_clusters) {
  std::vector<unsigned char> buf(3 * kClusterSize, 0);
  // Header extensions, then the backing file name, all within cluster 0.
  size_t offset = kHeaderLength;
  PutBe32(buf, offset, kBackingFormatExtension);
  PutBe32(buf, offset + 4, static_cast<uint32_t>(backing_format.size()));
  std::memcpy(&buf[offset + 8], backing_format.data(), backing_format.size());
  offset += 8 + RoundUp(backing_format.size(), 8);
  offset += 8;  // The end-of-extensions marker: type 0, length 0.
  const size_t backing_name_offset = offset;
  std::memcpy(&buf[backing_name_offset], backing_path.data(), backing_path.size());

  std::memcpy(&buf[0], kQcow2Magic, 4);
  PutBe32(buf, 4, 3);  // version
  PutBe64(buf, 8, backing_name_offset);
  PutBe32(buf, 16, static_cast<uint32_t>(backing_path.size()));
  PutBe32(buf, 20, kClusterBits);
  PutBe64(buf, 24, virtual_size);
  PutBe32(buf, 32, 0);  // crypt_method: none
  PutBe32(buf, 36, l1_size);
  PutBe64(buf, 40, kL1TableOffset);
  PutBe64(buf, 48, kRefcountTableOffset);
  PutBe32(buf, 56, 1);  // refcount_table_clusters
  PutBe32(buf, 60, 0);  // nb_snapshots
  PutBe64(buf, 64, 0);  // snapshots_offset
  PutBe64(buf, 72, 0);  // incompatible_features
  PutBe64(buf, 80, 0);  // compatible_features
  PutBe64(buf, 88, 0);  // autoclear_features
  PutBe32(buf, 96, 4);  // refcount_order: 16-bit refcounts
  PutBe32(buf, 100, kHeaderLength);
  buf[104] = 0;  // compression_type: zlib

  PutBe64(buf, kRefcountTableOffset, kRefcountBlockOffset);
  const uint64_t used_clusters = kL1TableOffset / kClusterSize + l1_clusters;
  for (uint64_t cluster = 0; cluster < used_clusters; ++cluster) {
    PutBe16(buf, kRefcountBlockOffset + 2 * cluster, 1);
  }
  return buf;
}

}  // namespace

absl::StatusOr<uint64_t> DiskVirtualSize(const std::string& path, const std::string& format) {
  if (format != "raw" && format != "qcow2") {
    return absl::InvalidArgumentError(StrCat("disk image \"", path, "\": format \"", format,
                                             "\" is not supported: expected \"qcow2\" or \"raw\""));
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening disk image \"", path, "\""));
  ScopeGuard close_fd([fd] { ::close(fd); });
  if (format == "raw") {
    // lseek rather than fstat: also right for a block device.
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0) return ErrnoToStatus(errno, StrCat("sizing disk image \"", path, "\""));
    return RoundUp(static_cast<uint64_t>(end), 512);
  }
  unsigned char header[32];
  ssize_t n;
  do {
    n = ::pread(fd, header, sizeof(header), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoToStatus(errno, StrCat("reading disk image \"", path, "\""));
  if (n != static_cast<ssize_t>(sizeof(header)) || std::memcmp(header, kQcow2Magic, 4) != 0) {
    return absl::InvalidArgumentError(
        StrCat("disk image \"", path, "\" is not a qcow2 image: expected the magic \"QFI\\xfb\""));
  }
  return GetBe64(header + 24);
}

absl::Status CreateQcow2Overlay(const std::string& path, const std::string& backing_path,
                                const std::string& backing_format, uint64_t virtual_size) {
  const std::string context = StrCat("creating the qcow2 overlay \"", path, "\"");
  if (backing_path.empty() || backing_path.front() != '/') {
    return absl::InvalidArgumentError(
        StrCat(context, ": backing file \"", backing_path, "\" is not an absolute path"));
  }
  if (backing_path.size() > kMaxBackingNameLength) {
    return absl::InvalidArgumentError(StrCat(context, ": backing file name is ",
                                             backing_path.size(),
                                             " bytes long: qcow2 allows at most 1023"));
  }
  absl::StatusOr<uint64_t> backing_size = DiskVirtualSize(backing_path, backing_format);
  if (!backing_size.ok()) return Annotate(backing_size.status(), context);
  if (virtual_size == 0) {
    virtual_size = *backing_size;
  } else {
    virtual_size = RoundUp(virtual_size, 512);
    if (virtual_size < *backing_size) {
      return absl::InvalidArgumentError(StrCat(context, ": virtual size ", virtual_size,
                                               " bytes is smaller than the backing image \"",
                                               backing_path, "\" of ", *backing_size, " bytes"));
    }
  }
  const uint64_t l1_entries = (virtual_size + kBytesPerL1Entry - 1) / kBytesPerL1Entry;
  if (l1_entries * 8 > kMaxL1Bytes) {
    return absl::InvalidArgumentError(StrCat(context, ": virtual size ", virtual_size,
                                             " bytes exceeds the qcow2 limit of ",
                                             kMaxL1Bytes / 8 * kBytesPerL1Entry, " bytes"));
  }
  const uint64_t l1_clusters =
      l1_entries == 0 ? 1 : RoundUp(l1_entries * 8, kClusterSize) / kClusterSize;
  const std::vector<unsigned char> metadata = Qcow2Metadata(
      backing_path, backing_format, virtual_size, static_cast<uint32_t>(l1_entries), l1_clusters);

  const std::string tmp = StrCat(path, ".tmp-", GenerateId().substr(0, 12));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, StrCat(context, ": creating \"", tmp, "\""));
  ScopeGuard remove_tmp([&tmp] { ::unlink(tmp.c_str()); });
  ScopeGuard close_fd([&fd] { ::close(fd); });
  VMLET_RETURN_IF_ERROR(Annotate(PwriteAll(fd, metadata.data(), metadata.size(), 0, tmp), context));
  // The L1 table reads as zeros: extending the file writes nothing.
  if (::ftruncate(fd, static_cast<off_t>(kL1TableOffset + l1_clusters * kClusterSize)) != 0) {
    return ErrnoToStatus(errno, StrCat(context, ": extending \"", tmp, "\""));
  }
  if (::fsync(fd) != 0) return ErrnoToStatus(errno, StrCat(context, ": syncing \"", tmp, "\""));
  close_fd.Dismiss();
  if (::close(fd) != 0) return ErrnoToStatus(errno, StrCat(context, ": closing \"", tmp, "\""));
  // Never replaces an existing file: EEXIST becomes ALREADY_EXISTS. A file
  // system without RENAME_NOREPLACE gets link + unlink, as safe.
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno != EINVAL && errno != ENOSYS) {
      return ErrnoToStatus(errno, StrCat(context, ": renaming \"", tmp, "\""));
    }
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      return ErrnoToStatus(errno, StrCat(context, ": linking \"", tmp, "\""));
    }
  } else {
    remove_tmp.Dismiss();
  }
  const std::string dir = DirName(path);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoToStatus(errno, StrCat(context, ": opening \"", dir, "\""));
  int rc = ::fsync(dir_fd);
  int saved_errno = errno;
  ::close(dir_fd);
  if (rc != 0) return ErrnoToStatus(saved_errno, StrCat(context, ": syncing \"", dir, "\""));
  return absl::OkStatus();
}

}  // namespace vmlet::image

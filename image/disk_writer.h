// Writes a disk image arriving as a stream (an HTTP download, an import) to
// a new file, hashing it on the way and leaving 4 KiB blocks of zeros as
// holes, so that a mostly empty raw disk stays sparse.
//
// Not thread-safe: one writer per stream.
#ifndef VMLET_IMAGE_DISK_WRITER_H_
#define VMLET_IMAGE_DISK_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "image/digest.h"

namespace vmlet::image {

class DiskWriter {
 public:
  // Creates `path` (0644); it must not exist.
  static absl::StatusOr<DiskWriter> Create(const std::string& path);
  DiskWriter(DiskWriter&& other) noexcept;
  DiskWriter& operator=(DiskWriter&&) = delete;
  ~DiskWriter();

  // Appends `chunk`.
  absl::Status Write(std::string_view chunk);

  // Sets the final size (trailing holes), syncs and closes; returns the
  // content's "sha256:<hex>". Call once.
  absl::StatusOr<std::string> Finish();

 private:
  DiskWriter(int fd, std::string path);
  absl::Status WriteAt(std::string_view data);

  int fd_ = -1;
  std::string path_;
  uint64_t offset_ = 0;
  std::unique_ptr<Sha256Hasher> hasher_;
};

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_DISK_WRITER_H_

// Applying the layers of an OCI image onto a directory, in order, as a
// rootless unpacker would: untrusted tar streams that must never write
// outside the directory nor leave a link that leads out of it.
#ifndef VMLET_IMAGE_LAYER_EXTRACT_H_
#define VMLET_IMAGE_LAYER_EXTRACT_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace vmlet::image {

struct ExtractStats {
  uint64_t files = 0;    // Regular files, symlinks and hard links written (not directories).
  uint64_t bytes = 0;    // The regular files' sizes (holes included).
  uint64_t skipped = 0;  // Device nodes, fifos and sockets: never extracted.
};

// Applies one layer (tar, tar+gzip or tar+zstd, detected from its first
// bytes) read sequentially from `fd`, a pipe, onto the existing or new
// directory `root`, with OCI layer semantics:
//   - ".wh.<name>" deletes <name> as left by earlier layers, ".wh..wh..opq"
//     empties its directory of what earlier layers left (entries of this
//     layer stay, whatever their order); the whiteouts are not extracted.
//   - A later entry replaces what is at its path (a directory over a
//     directory merges).
//   - Regular files keep their permission bits without setuid/setgid;
//     directories are 0755; nothing is chowned (files belong to the caller)
//     and no timestamps or xattrs are restored. Holes are preserved, both
//     the sparse entries of the tar and runs of zeros in ordinary entries
//     (in 4 KiB blocks), so a mostly-zero raw disk stays mostly unallocated.
//   - Device nodes, fifos and sockets are skipped and counted, as rootless
//     unpackers do: they are meaningless in a VM image.
// Refused, with a message naming the entry and why:
//   INVALID_ARGUMENT: absolute entry paths, ".." components, symlinks whose
//     target is absolute (it would name a host file), climbs above `root`
//     or has ".." after a name (resolved through that name, which may be a
//     symlink, so not lexically checkable), hard links whose target path is
//     absolute, has "..", or is a directory; an archive libarchive cannot
//     read.
//   FAILED_PRECONDITION: entries (and whiteouts) whose parent path passes
//     through a symlink or a non-directory, hard links whose target is
//     absent.
// Paths are resolved component by component with O_NOFOLLOW from a
// descriptor of `root`, so the kernel itself refuses to follow a symlink.
// After the end-of-archive marker the rest of `fd` (tar and compressor
// padding) is read and discarded up to its end, so the pipe's writer never
// blocks; on an error `fd` is left as it is (the caller closes it and
// removes `root`: partial output is left behind). CANCELLED as soon as
// `cancelled` (may be null; polled at every read and entry) turns true.
// Not synced to disk. Any thread; one call per `root` at a time.
absl::StatusOr<ExtractStats> ExtractLayer(int fd, const std::string& root,
                                          const std::atomic<bool>* cancelled = nullptr);

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_LAYER_EXTRACT_H_

// Copy-on-write disks: a qcow2 overlay over a read-only base image, written
// natively (no qemu-img process) in constant time whatever the base's size.
#ifndef VMLET_IMAGE_QCOW2_OVERLAY_H_
#define VMLET_IMAGE_QCOW2_OVERLAY_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmlet::image {

// Writes a qcow2 (version 3, 64 KiB clusters, 16-bit refcounts) image at
// `path` backed by `backing_path` (an absolute path; format
// `backing_format`, "qcow2" or "raw", recorded in the backing-format header
// extension) with virtual size `virtual_size`, rounded up to a multiple of
// 512 bytes as qemu-img does (0 = the backing image's virtual size). Only the
// header, the refcount table and block and an all-zero L1 table are written:
// O(1) in the backing image's size. The file is created 0600 under a
// temporary name, fsynced and renamed into place without replacing anything
// (ALREADY_EXISTS when `path` exists). INVALID_ARGUMENT for a size smaller
// than the backing image's (naming both), a relative or overlong backing
// path, an unknown format or a qcow2 backing file that is not qcow2;
// NOT_FOUND when the backing file is missing. Thread-safe.
absl::Status CreateQcow2Overlay(const std::string& path, const std::string& backing_path,
                                const std::string& backing_format, uint64_t virtual_size = 0);

// The virtual size of a disk image: for "raw" its size in bytes rounded up
// to a multiple of 512, for "qcow2" the size in its header. Thread-safe.
absl::StatusOr<uint64_t> DiskVirtualSize(const std::string& path, const std::string& format);

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_QCOW2_OVERLAY_H_

// The layout of a VM image's filesystem (DESIGN.md "Images"):
//   disk/<file>                       one disk image, qcow2 or raw; or
//   boot/vmlinuz [boot/initrd] [boot/cmdline]   direct kernel boot.
// ReadImageLayout turns such a directory into the BootSource of a VM.
#ifndef VMLET_IMAGE_IMAGE_LAYOUT_H_
#define VMLET_IMAGE_IMAGE_LAYOUT_H_

#include <string>

#include "absl/status/statusor.h"
#include "vmdriver/boot_source.h"

namespace vmlet::image {

// FAILED_PRECONDITION naming the expected layouts when `dir` holds neither;
// INVALID_ARGUMENT when disk/ holds other than exactly one file.
absl::StatusOr<vmdriver::BootSource> ReadImageLayout(const std::string& dir);

// "qcow2" when the file starts with the qcow2 magic, "raw" otherwise.
absl::StatusOr<std::string> DetectDiskFormat(const std::string& path);

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_IMAGE_LAYOUT_H_

// Pod annotations under "vmlet.io/": typed VM tunables that the CRI's
// container config cannot carry. Keys are strict: an unknown key under the
// prefix is an error, never ignored (DESIGN.md "Fixed names").
#ifndef VMLET_ANNOTATIONS_ANNOTATIONS_H_
#define VMLET_ANNOTATIONS_ANNOTATIONS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace vmlet::annotations {

inline constexpr std::string_view kPrefix = "vmlet.io/";
// The virtual size of the VM's root disk overlay, a Kubernetes quantity
// ("20Gi"); at least the image's own size. Disk images only.
inline constexpr std::string_view kRootDiskSize = "vmlet.io/root-disk-size";

struct VmTunables {
  uint64_t root_disk_bytes = 0;  // 0: the image's size.
};

// Reads the vmlet.io/ keys of `annotations`; other keys are ignored.
// INVALID_ARGUMENT names `field`, the key, the value and what was expected.
absl::StatusOr<VmTunables> ParseVmTunables(const std::map<std::string, std::string>& annotations,
                                           std::string_view field);

// A Kubernetes quantity of bytes: "1073741824", "512Mi", "20Gi", "1T", "1.5Gi".
absl::StatusOr<uint64_t> ParseByteQuantity(std::string_view value);

}  // namespace vmlet::annotations

#endif  // VMLET_ANNOTATIONS_ANNOTATIONS_H_

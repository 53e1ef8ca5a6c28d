// A small ISO 9660 image (Rock Ridge and Joliet) written in-process with
// libarchive: the cloud-init NoCloud seed is one.
#ifndef VMLET_NETWORK_ISO_IMAGE_H_
#define VMLET_NETWORK_ISO_IMAGE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace vmlet::network {

struct IsoFile {
  std::string name;  // In the image's root directory.
  std::string contents;
};

// Writes an image labelled `volume_id` (at most 32 characters, kept in its
// case) holding `files` (mode 0644, owned by root) to `path`, atomically
// (WriteFileAtomically; mode 0644 whatever the umask). Thread-safe.
absl::Status WriteIsoImage(const std::string& path, std::string_view volume_id,
                           const std::vector<IsoFile>& files);

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_ISO_IMAGE_H_

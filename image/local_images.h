// Images an operator placed on the node: the config key `local_images` maps
// an image name to a directory with a VM image layout (image_layout.h).
// They are listed by the ImageService like pulled images and can be booted
// without a registry (air-gapped nodes, tests, the demo).
#ifndef VMLET_IMAGE_LOCAL_IMAGES_H_
#define VMLET_IMAGE_LOCAL_IMAGES_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "vmdriver/boot_source.h"

namespace vmlet::image {

struct LocalImage {
  std::string name;  // As configured, e.g. "vmlet.local/tiny:1".
  std::string dir;
  // "sha256:<hex>" over the layout's file names, sizes and modification
  // times: it changes when the operator replaces a file.
  std::string id;
  uint64_t size = 0;
  vmdriver::BootSource boot;
};

class LocalImages {
 public:
  // Reads every configured directory; an error names the image and says
  // what is wrong with its directory.
  static absl::StatusOr<LocalImages> Load(const std::map<std::string, std::string>& dirs);

  // By name (an untagged name also matches "<name>:latest"), by id, or by
  // the hex of the id alone. nullptr if none matches.
  const LocalImage* Find(std::string_view name_or_id) const;

  const std::vector<LocalImage>& images() const { return images_; }

 private:
  std::vector<LocalImage> images_;
};

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_LOCAL_IMAGES_H_

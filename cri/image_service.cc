// The ImageService verbs that do not need an image store yet. Pulling VM
// images, and with it every stored image, comes with the image store.
#include <filesystem>
#include <system_error>

#include "base/file_util.h"
#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/cri_service.h"

namespace vmlet::cri {
namespace {

struct Usage {
  uint64_t bytes = 0;
  uint64_t inodes = 0;
};

absl::StatusOr<Usage> DiskUsage(const std::string& dir) {
  Usage usage;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    ++usage.inodes;
    if (it->is_regular_file(error)) usage.bytes += it->file_size(error);
  }
  if (error) return ErrnoToStatus(error.value(), StrCat("measuring \"", dir, "\""));
  return usage;
}

}  // namespace

absl::Status CriService::ListImages(const v1::ListImagesRequest& /*req*/,
                                    v1::ListImagesResponse* /*resp*/) {
  return absl::OkStatus();  // No image can be stored yet.
}

absl::Status CriService::ImageStatus(const v1::ImageStatusRequest& req,
                                     v1::ImageStatusResponse* /*resp*/) {
  if (req.image().image().empty()) {
    return absl::InvalidArgumentError("image.image is empty: expected an image id or reference");
  }
  return absl::OkStatus();  // An unset `image` tells the kubelet it is not present.
}

absl::Status CriService::RemoveImage(const v1::RemoveImageRequest& req,
                                     v1::RemoveImageResponse* /*resp*/) {
  if (req.image().image().empty()) {
    return absl::InvalidArgumentError("image.image is empty: expected an image id or reference");
  }
  return absl::OkStatus();  // Removing an image that is not there succeeds.
}

absl::Status CriService::ImageFsInfo(const v1::ImageFsInfoRequest& /*req*/,
                                     v1::ImageFsInfoResponse* resp) {
  const std::string dir = StrCat(options_.state_dir, "/images");
  VMLET_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  VMLET_ASSIGN_OR_RETURN(Usage usage, DiskUsage(dir));
  v1::FilesystemUsage* fs = resp->add_image_filesystems();
  fs->set_timestamp(NowNanos());
  fs->mutable_fs_id()->set_mountpoint(dir);
  fs->mutable_used_bytes()->set_value(usage.bytes);
  fs->mutable_inodes_used()->set_value(usage.inodes);
  return absl::OkStatus();
}

}  // namespace vmlet::cri

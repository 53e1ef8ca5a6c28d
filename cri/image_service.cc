// The ImageService. Images come from the operator's local_images for now;
// pulling from OCI registries and HTTP(S) comes with the image store.
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

v1::Image ToCriImage(const image::LocalImage& local) {
  v1::Image out;
  out.set_id(local.id);
  out.add_repo_tags(local.name);
  out.set_size(local.size);
  out.mutable_spec()->set_image(local.name);
  return out;
}

absl::Status RequireImageField(const v1::ImageSpec& spec) {
  if (spec.image().empty()) {
    return absl::InvalidArgumentError("image.image is empty: expected an image id or reference");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CriService::ListImages(const v1::ListImagesRequest& req,
                                    v1::ListImagesResponse* resp) {
  for (const image::LocalImage& local : local_images_.images()) {
    if (req.filter().has_image() && !req.filter().image().image().empty() &&
        local_images_.Find(req.filter().image().image()) != &local) {
      continue;
    }
    *resp->add_images() = ToCriImage(local);
  }
  return absl::OkStatus();
}

absl::Status CriService::ImageStatus(const v1::ImageStatusRequest& req,
                                     v1::ImageStatusResponse* resp) {
  VMLET_RETURN_IF_ERROR(RequireImageField(req.image()));
  // An unset `image` tells the kubelet the image is not present.
  if (const image::LocalImage* local = local_images_.Find(req.image().image())) {
    *resp->mutable_image() = ToCriImage(*local);
    if (req.verbose()) (*resp->mutable_info())["dir"] = StrCat("\"", local->dir, "\"");
  }
  return absl::OkStatus();
}

absl::Status CriService::PullImage(const v1::PullImageRequest& req, v1::PullImageResponse* resp) {
  VMLET_RETURN_IF_ERROR(RequireImageField(req.image()));
  if (const image::LocalImage* local = local_images_.Find(req.image().image())) {
    resp->set_image_ref(local->id);  // Already on the node.
    return absl::OkStatus();
  }
  return absl::UnimplementedError(
      StrCat("vmlet cannot pull \"", req.image().image(),
             "\" yet: pulling from OCI registries and HTTP(S) is planned; an operator can "
             "provide VM images under local_images in vmlet.yaml"));
}

absl::Status CriService::RemoveImage(const v1::RemoveImageRequest& req,
                                     v1::RemoveImageResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(RequireImageField(req.image()));
  if (const image::LocalImage* local = local_images_.Find(req.image().image())) {
    return absl::FailedPreconditionError(
        StrCat("image \"", local->name,
               "\" is configured in local_images and cannot be removed "
               "through the CRI: remove it from vmlet.yaml"));
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

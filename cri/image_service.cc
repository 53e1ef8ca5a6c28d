// The ImageService: the image store (image/image_store.h) seen through the
// CRI. Images are named as the kubelet expects: repo_tags "host/repo:tag",
// repo_digests "host/repo@sha256:...", ids "sha256:...".
#include <nlohmann/json.hpp>

#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/cri_service.h"

namespace vmlet::cri {
namespace {

// The image config's user: a number becomes `uid`, a name `username`
// ("user:group" counts by its user part), as the kubelet reads them for
// runAsNonRoot.
void SetUser(const std::string& user, v1::Image& out) {
  std::string name = user.substr(0, user.find(':'));
  if (name.empty()) return;
  bool numeric = name.find_first_not_of("0123456789") == std::string::npos && name.size() < 19;
  if (numeric) {
    out.mutable_uid()->set_value(std::stoll(name));
  } else {
    out.set_username(name);
  }
}

v1::Image ToCriImage(const image::StoredImage& stored) {
  v1::Image out;
  out.set_id(stored.id);
  for (const std::string& tag : stored.repo_tags) out.add_repo_tags(tag);
  for (const std::string& digest : stored.repo_digests) out.add_repo_digests(digest);
  out.set_size(stored.size);
  out.mutable_spec()->set_image(stored.id);
  SetUser(stored.config.user, out);
  out.set_pinned(stored.pinned);
  return out;
}

// The verbose ImageStatus info: where the image came from and what it
// holds, as one JSON document under the key "info" (as containerd does).
std::string VerboseInfo(const image::StoredImage& stored) {
  nlohmann::json config{{"user", stored.config.user},
                        {"entrypoint", stored.config.entrypoint},
                        {"cmd", stored.config.cmd},
                        {"env", stored.config.env},
                        {"working_dir", stored.config.working_dir},
                        {"labels", stored.config.labels}};
  nlohmann::json info{{"source", stored.source},
                      {"origin", stored.origin},
                      {"layout", image::LayoutKindName(stored.layout)},
                      {"rootfs", stored.rootfs},
                      {"inodes", stored.inodes},
                      {"config", config}};
  return info.dump();
}

absl::Status RequireImageField(std::string_view field, const v1::ImageSpec& spec) {
  if (spec.image().empty()) {
    return absl::InvalidArgumentError(
        StrCat(field, ".image is empty: expected an image id or reference"));
  }
  return absl::OkStatus();
}

image::Credentials ToCredentials(const v1::AuthConfig& auth) {
  return image::Credentials{.username = auth.username(),
                            .password = auth.password(),
                            .auth = auth.auth(),
                            .identity_token = auth.identity_token(),
                            .registry_token = auth.registry_token()};
}

}  // namespace

absl::Status CriService::ListImages(const v1::ListImagesRequest& req,
                                    v1::ListImagesResponse* resp) {
  const std::string& filter = req.filter().image().image();
  std::optional<image::StoredImage> wanted;
  if (!filter.empty()) {
    wanted = images_->Find(filter);
    if (!wanted.has_value()) return absl::OkStatus();
  }
  for (const image::StoredImage& stored : images_->List()) {
    if (wanted.has_value() && stored.id != wanted->id) continue;
    *resp->add_images() = ToCriImage(stored);
  }
  return absl::OkStatus();
}

absl::Status CriService::ImageStatus(const v1::ImageStatusRequest& req,
                                     v1::ImageStatusResponse* resp) {
  VMLET_RETURN_IF_ERROR(RequireImageField("image", req.image()));
  // An unset `image` tells the kubelet the image is not present.
  if (std::optional<image::StoredImage> stored = images_->Find(req.image().image())) {
    *resp->mutable_image() = ToCriImage(*stored);
    if (req.verbose()) (*resp->mutable_info())["info"] = VerboseInfo(*stored);
  }
  return absl::OkStatus();
}

absl::Status CriService::PullImage(const v1::PullImageRequest& req, v1::PullImageResponse* resp) {
  VMLET_RETURN_IF_ERROR(RequireImageField("image", req.image()));
  VMLET_ASSIGN_OR_RETURN(std::string id,
                         images_->Pull(req.image().image(), ToCredentials(req.auth())));
  resp->set_image_ref(id);
  return absl::OkStatus();
}

absl::Status CriService::RemoveImage(const v1::RemoveImageRequest& req,
                                     v1::RemoveImageResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(RequireImageField("image", req.image()));
  return images_->Remove(req.image().image());
}

absl::Status CriService::ImageFsInfo(const v1::ImageFsInfoRequest& /*req*/,
                                     v1::ImageFsInfoResponse* resp) {
  // From memory: the kubelet asks every few seconds.
  image::StoreUsage usage = images_->Usage();
  v1::FilesystemUsage* fs = resp->add_image_filesystems();
  fs->set_timestamp(NowNanos());
  fs->mutable_fs_id()->set_mountpoint(images_->dir());
  fs->mutable_used_bytes()->set_value(usage.bytes);
  fs->mutable_inodes_used()->set_value(usage.inodes);
  return absl::OkStatus();
}

}  // namespace vmlet::cri

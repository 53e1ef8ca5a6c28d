#include "image/local_images.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "base/status.h"
#include "base/str_util.h"
#include "image/image_layout.h"

namespace vmlet::image {
namespace {

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

// The files of the layout, in a stable order, described for the id.
absl::Status Describe(const std::string& dir, std::string& description, uint64_t& size) {
  std::error_code error;
  std::vector<std::filesystem::path> files;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error)) files.push_back(it->path());
  }
  if (error) return ErrnoToStatus(error.value(), StrCat("reading \"", dir, "\""));
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    struct stat st;
    if (::stat(file.c_str(), &st) != 0) return ErrnoToStatus(errno, file.string());
    StrAppend(&description, file.lexically_relative(dir).string(), "\n", st.st_size, "\n",
              st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, "\n");
    size += static_cast<uint64_t>(st.st_size);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LocalImages> LocalImages::Load(const std::map<std::string, std::string>& dirs) {
  LocalImages local;
  for (const auto& [name, dir] : dirs) {
    LocalImage image{.name = name, .dir = dir};
    absl::StatusOr<vmdriver::BootSource> boot = ReadImageLayout(dir);
    if (!boot.ok()) return Annotate(boot.status(), StrCat("local image \"", name, "\""));
    image.boot = *std::move(boot);
    std::string description = StrCat(name, "\n");
    VMLET_RETURN_IF_ERROR(
        Annotate(Describe(dir, description, image.size), StrCat("local image \"", name, "\"")));
    image.id = StrCat("sha256:", Sha256Hex(description));
    local.images_.push_back(std::move(image));
  }
  return local;
}

const LocalImage* LocalImages::Find(std::string_view name_or_id) const {
  for (const LocalImage& image : images_) {
    if (image.name == name_or_id || image.id == name_or_id ||
        std::string_view(image.id).substr(7) == name_or_id ||
        image.name == StrCat(name_or_id, ":latest")) {
      return &image;
    }
  }
  return nullptr;
}

}  // namespace vmlet::image

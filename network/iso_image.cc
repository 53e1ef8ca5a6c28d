#include "network/iso_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "base/file_util.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::network {
namespace {

// ISO9660 (ECMA-119): the primary volume descriptor is the first one, at
// sector 16 of 2048 bytes; it starts with type 1, "CD001", version 1, and
// holds the volume identifier at bytes 40..71, padded with spaces.
constexpr size_t kPrimaryVolumeDescriptor = 16 * 2048;
constexpr std::string_view kPrimaryVolumeDescriptorStart(
    "\x01"
    "CD001"
    "\x01",
    7);
constexpr size_t kVolumeIdOffset = 40;
constexpr size_t kVolumeIdSize = 32;
constexpr mode_t kFileMode = 0644;

absl::Status ArchiveError(struct archive* archive, std::string_view what, const std::string& path) {
  const char* message = archive_error_string(archive);
  std::string context = StrCat("writing the ISO image \"", path, "\": ", what, ": ",
                               message != nullptr ? message : "libarchive gave no reason");
  int error = archive_errno(archive);
  if (error > 0) return ErrnoToStatus(error, context);
  return absl::InternalError(context);
}

la_ssize_t AppendToString(struct archive* /*archive*/, void* image, const void* data, size_t size) {
  static_cast<std::string*>(image)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

absl::Status WriteIso(std::string* image, const std::string& path, std::string_view volume_id,
                      const std::vector<IsoFile>& files) {
  struct archive* archive = archive_write_new();
  if (archive == nullptr) return absl::ResourceExhaustedError("archive_write_new failed");
  ScopeGuard free_archive([archive] { archive_write_free(archive); });
  if (archive_write_set_format_iso9660(archive) != ARCHIVE_OK ||
      archive_write_set_options(archive, StrCat("iso9660:volume-id=", volume_id,
                                                ",iso9660:rockridge=strict,iso9660:joliet")
                                             .c_str()) != ARCHIVE_OK) {
    return ArchiveError(archive, "setting up the iso9660 writer", path);
  }
  // The whole image is small (a few hundred KiB): it is built in memory.
  if (archive_write_set_bytes_in_last_block(archive, 1) != ARCHIVE_OK ||
      archive_write_open(archive, image, nullptr, AppendToString, nullptr) != ARCHIVE_OK) {
    return ArchiveError(archive, "opening", path);
  }
  const time_t now = ::time(nullptr);
  for (const IsoFile& file : files) {
    struct archive_entry* entry = archive_entry_new();
    if (entry == nullptr) return absl::ResourceExhaustedError("archive_entry_new failed");
    ScopeGuard free_entry([entry] { archive_entry_free(entry); });
    archive_entry_set_pathname(entry, file.name.c_str());
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_perm(entry, kFileMode);
    archive_entry_set_uid(entry, 0);
    archive_entry_set_gid(entry, 0);
    archive_entry_set_size(entry, static_cast<la_int64_t>(file.contents.size()));
    archive_entry_set_mtime(entry, now, 0);
    if (archive_write_header(archive, entry) != ARCHIVE_OK) {
      return ArchiveError(archive, StrCat("adding ", file.name), path);
    }
    la_ssize_t written = archive_write_data(archive, file.contents.data(), file.contents.size());
    if (written != static_cast<la_ssize_t>(file.contents.size())) {
      return ArchiveError(archive, StrCat("writing ", file.name), path);
    }
  }
  if (archive_write_close(archive) != ARCHIVE_OK) {
    return ArchiveError(archive, "finishing the image", path);
  }
  return absl::OkStatus();
}

// libarchive upper-cases the primary volume identifier (ISO9660 allows only
// d-characters there); write it as given, as genisoimage -V does, since
// some label checks (cloud-init's NoCloud "cidata" among them, in readers
// without Joliet) are case-sensitive. The Joliet descriptor has it as given.
absl::Status LabelPrimaryVolume(std::string* image, const std::string& path,
                                std::string_view volume_id) {
  if (image->size() < kPrimaryVolumeDescriptor + kVolumeIdOffset + kVolumeIdSize ||
      image->compare(kPrimaryVolumeDescriptor, kPrimaryVolumeDescriptorStart.size(),
                     kPrimaryVolumeDescriptorStart) != 0) {
    return absl::InternalError(StrCat("writing the ISO image \"", path,
                                      "\": no ISO9660 primary volume descriptor at byte 32768"));
  }
  std::string label(kVolumeIdSize, ' ');
  label.replace(0, volume_id.size(), volume_id);
  image->replace(kPrimaryVolumeDescriptor + kVolumeIdOffset, kVolumeIdSize, label);
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteIsoImage(const std::string& path, std::string_view volume_id,
                           const std::vector<IsoFile>& files) {
  if (volume_id.empty() || volume_id.size() > kVolumeIdSize) {
    return absl::InvalidArgumentError(
        StrCat("ISO volume id \"", volume_id, "\" is invalid: expected 1 to 32 characters"));
  }
  std::string image;
  VMLET_RETURN_IF_ERROR(WriteIso(&image, path, volume_id, files));
  VMLET_RETURN_IF_ERROR(LabelPrimaryVolume(&image, path, volume_id));
  return WriteFileAtomically(path, image, kFileMode);
}

}  // namespace vmlet::network

#include "image/image_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/fault_point.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "image/digest.h"
#include "image/disk_writer.h"
#include "image/image_layout.h"
#include "image/layer_extract.h"
#include "image/local_images.h"
#include "image/reference.h"

namespace vmlet::image {
namespace {

constexpr Logger kLog("image");
using json = nlohmann::json;

constexpr std::string_view kMetaFile = "image.json";

// Layer media types vmlet can apply: tar, optionally gzip or zstd
// compressed (libarchive detects the compression).
bool IsLayerMediaType(std::string_view type) {
  static constexpr std::string_view kTypes[] = {
      "application/vnd.oci.image.layer.v1.tar",
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.docker.image.rootfs.diff.tar",
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
      "application/vnd.docker.image.rootfs.diff.tar.zstd",
  };
  return std::find(std::begin(kTypes), std::end(kTypes), type) != std::end(kTypes);
}

std::vector<std::string> StringArray(const json& value) {
  std::vector<std::string> out;
  if (!value.is_array()) return out;
  for (const json& item : value) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

std::string StringField(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The run settings of an OCI image config ("config" object of the JSON).
absl::StatusOr<RunConfig> ParseRunConfig(std::string_view bytes, std::string_view digest) {
  json doc = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::DataLossError(
        StrCat("image config ", digest, " is not a JSON object: expected an OCI image config"));
  }
  RunConfig run;
  auto config = doc.find("config");
  if (config == doc.end() || !config->is_object()) return run;
  run.user = StringField(*config, "User");
  run.working_dir = StringField(*config, "WorkingDir");
  if (auto it = config->find("Entrypoint"); it != config->end()) run.entrypoint = StringArray(*it);
  if (auto it = config->find("Cmd"); it != config->end()) run.cmd = StringArray(*it);
  if (auto it = config->find("Env"); it != config->end()) run.env = StringArray(*it);
  if (auto it = config->find("Labels"); it != config->end() && it->is_object()) {
    for (const auto& [key, value] : it->items()) {
      if (value.is_string()) run.labels[key] = value.get<std::string>();
    }
  }
  return run;
}

json RunConfigToJson(const RunConfig& run) {
  return json{{"user", run.user}, {"entrypoint", run.entrypoint},   {"cmd", run.cmd},
              {"env", run.env},   {"working_dir", run.working_dir}, {"labels", run.labels}};
}

RunConfig RunConfigFromJson(const json& value) {
  RunConfig run;
  run.user = StringField(value, "user");
  run.working_dir = StringField(value, "working_dir");
  if (!value.is_object()) return run;
  if (auto it = value.find("entrypoint"); it != value.end()) run.entrypoint = StringArray(*it);
  if (auto it = value.find("cmd"); it != value.end()) run.cmd = StringArray(*it);
  if (auto it = value.find("env"); it != value.end()) run.env = StringArray(*it);
  if (auto it = value.find("labels"); it != value.end() && it->is_object()) {
    for (const auto& [key, label] : it->items()) {
      if (label.is_string()) run.labels[key] = label.get<std::string>();
    }
  }
  return run;
}

absl::StatusOr<LayoutKind> ParseLayoutKind(std::string_view name) {
  for (LayoutKind kind : {LayoutKind::kContainer, LayoutKind::kDisk, LayoutKind::kKernel}) {
    if (LayoutKindName(kind) == name) return kind;
  }
  return absl::DataLossError(StrCat("unknown layout \"", name, "\""));
}

// What the filesystem at `rootfs` holds. Only a disk or kernel layout makes
// a bootable VM image; anything else is kept as a container image, and
// CreateContainer explains what is missing.
LayoutKind DetectLayout(const std::string& rootfs) {
  absl::StatusOr<vmdriver::BootSource> boot = ReadImageLayout(rootfs);
  if (!boot.ok()) return LayoutKind::kContainer;
  return boot->IsKernelBoot() ? LayoutKind::kKernel : LayoutKind::kDisk;
}

// Makes every file read-only and every directory 0755 (QEMU, running as
// its own user, reads disks through them), and measures the tree.
absl::StatusOr<StoreUsage> SealTree(const std::string& root) {
  StoreUsage usage;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(root, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) {
      return ErrnoToStatus(errno, StrCat("inspecting \"", it->path().string(), "\""));
    }
    ++usage.inodes;
    usage.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    if (S_ISDIR(st.st_mode)) {
      ::chmod(it->path().c_str(), 0755);
    } else if (S_ISREG(st.st_mode)) {
      ::chmod(it->path().c_str(), st.st_mode & 0555);
    }
  }
  if (error) return ErrnoToStatus(error.value(), StrCat("walking \"", root, "\""));
  ::chmod(root.c_str(), 0755);
  return usage;
}

void AddUnique(std::vector<std::string>& list, const std::string& value) {
  if (!value.empty() && std::find(list.begin(), list.end(), value) == list.end()) {
    list.push_back(value);
  }
}

// A file name for a disk downloaded from `url`: its last path component
// when that is a plain name, "disk.img" otherwise.
std::string DiskFileName(std::string_view url) {
  std::string_view path = url.substr(0, url.find_first_of("?#"));
  std::string_view name = path.substr(path.rfind('/') + 1);
  if (name.empty() || name.size() > 200 || name == "." || name == "..") return "disk.img";
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return "disk.img";
    }
  }
  return std::string(name);
}

// The status a pipe writer reports when the extractor stopped reading: the
// extractor's own error is the one to report.
std::string MetaJson(const StoredImage& image, bool removed) {
  json doc{{"id", image.id},
           {"repo_tags", image.repo_tags},
           {"repo_digests", image.repo_digests},
           {"size", image.size},
           {"inodes", image.inodes},
           {"source", image.source},
           {"origin", image.origin},
           {"layout", LayoutKindName(image.layout)},
           {"config", RunConfigToJson(image.config)},
           {"stored_at", image.stored_at},
           {"updated_at", NowNanos()},
           {"removed", removed}};
  return doc.dump(2) + "\n";
}

absl::Status ReaderGone() { return absl::AbortedError("the layer extractor stopped reading"); }

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EPIPE) return ReaderGone();
    if (n < 0) return ErrnoToStatus(errno, "writing a layer to its extractor");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view LayoutKindName(LayoutKind kind) {
  switch (kind) {
    case LayoutKind::kContainer:
      return "container";
    case LayoutKind::kDisk:
      return "disk";
    case LayoutKind::kKernel:
      return "kernel";
  }
  return "unknown";
}

struct ImageStore::Flight {
  bool done = false;
  absl::StatusOr<std::string> result;
};

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(ImageStoreOptions options) {
  std::unique_ptr<ImageStore> store(new ImageStore(std::move(options)));
  VMLET_ASSIGN_OR_RETURN(Translator translator, Translator::Create(store->options_.translations));
  store->translator_ = std::move(translator);
  VMLET_ASSIGN_OR_RETURN(LocalImages local, LocalImages::Load(store->options_.local_images));
  for (const LocalImage& image : local.images()) {
    StoredImage stored{
        .id = image.id,
        .size = image.size,
        .source = "local",
        .origin = image.dir,
        .layout = image.boot.IsKernelBoot() ? LayoutKind::kKernel : LayoutKind::kDisk,
        .rootfs = image.dir,
        .pinned = true,
    };
    absl::StatusOr<Reference> ref = ParseReference(image.name);
    stored.repo_tags.push_back(ref.ok() ? ref->String() : image.name);
    kLog.Info("local image {} ({}) from {}", stored.repo_tags[0], image.id, image.dir);
    store->local_.push_back(std::move(stored));
  }
  VMLET_RETURN_IF_ERROR(store->Load());
  return store;
}

ImageStore::~ImageStore() {
  cancelled_ = true;
  std::unique_lock lock(mu_);
  flights_done_.wait(lock, [&] { return flights_.empty(); });
}

std::string ImageStore::ImageDir(std::string_view id) const {
  return StrCat(options_.dir, "/sha256/", DigestHex(id));
}

absl::Status ImageStore::Load() {
  const std::string& dir = options_.dir;
  VMLET_RETURN_IF_ERROR(MakeDirs(dir, 0711));
  VMLET_RETURN_IF_ERROR(MakeDirs(StrCat(dir, "/sha256"), 0711));
  // Whatever is under tmp/ is an interrupted pull, import or removal.
  VMLET_RETURN_IF_ERROR(RemoveTree(StrCat(dir, "/tmp")));
  VMLET_RETURN_IF_ERROR(MakeDirs(StrCat(dir, "/tmp"), 0711));

  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(StrCat(dir, "/sha256")));
  std::map<std::string, std::pair<std::string, int64_t>> tag_owner;  // tag -> (id, updated_at)
  std::map<std::string, int64_t> updated_at;
  std::lock_guard lock(mu_);
  for (const std::string& hex : names) {
    const std::string image_dir = StrCat(dir, "/sha256/", hex);
    absl::StatusOr<std::string> text = ReadFile(StrCat(image_dir, "/", kMetaFile));
    json doc = text.ok() ? json::parse(*text, nullptr, false) : json();
    Entry entry;
    StoredImage& image = entry.image;
    image.id = StringField(doc, "id");
    absl::StatusOr<LayoutKind> layout = ParseLayoutKind(StringField(doc, "layout"));
    if (!text.ok() || doc.is_discarded() || image.id != StrCat(kSha256Prefix, hex) ||
        !layout.ok()) {
      kLog.Error("image directory {} has no valid {}; removing it (pull the image again)",
                 image_dir, kMetaFile);
      (void)RemoveTree(image_dir);
      continue;
    }
    image.repo_tags = StringArray(doc.value("repo_tags", json::array()));
    image.repo_digests = StringArray(doc.value("repo_digests", json::array()));
    image.size = doc.value("size", uint64_t{0});
    image.inodes = doc.value("inodes", uint64_t{0});
    image.source = StringField(doc, "source");
    image.origin = StringField(doc, "origin");
    image.layout = *layout;
    image.config = RunConfigFromJson(doc.value("config", json::object()));
    image.rootfs = StrCat(image_dir, "/rootfs");
    image.stored_at = doc.value("stored_at", int64_t{0});
    entry.removed = doc.value("removed", false);
    int64_t updated = doc.value("updated_at", int64_t{0});
    updated_at[image.id] = updated;
    for (const std::string& tag : image.repo_tags) {
      auto [it, inserted] = tag_owner.try_emplace(tag, image.id, updated);
      if (!inserted && it->second.second < updated) it->second = {image.id, updated};
    }
    std::string id = image.id;  // Copied: `entry` (which holds `image`) is moved.
    images_.emplace(std::move(id), std::move(entry));
  }
  // A crash while a tag moved between images can leave it on both: the
  // most recently updated image keeps it.
  for (auto& [id, entry] : images_) {
    auto& tags = entry.image.repo_tags;
    size_t before = tags.size();
    std::erase_if(tags, [&](const std::string& tag) { return tag_owner[tag].first != id; });
    if (tags.size() != before) (void)WriteMeta(entry.image);
  }
  for (const auto& [id, entry] : images_) {
    kLog.Info("stored image {} {}{}", id,
              entry.image.repo_tags.empty() ? "<untagged>" : entry.image.repo_tags[0],
              entry.removed ? " (removed, waiting for its containers)" : "");
  }
  return absl::OkStatus();
}

absl::Status ImageStore::WriteMeta(const StoredImage& image) {
  bool removed = false;
  if (auto it = images_.find(image.id); it != images_.end()) removed = it->second.removed;
  return WriteFileAtomically(StrCat(ImageDir(image.id), "/", kMetaFile), MetaJson(image, removed),
                             0644);
}

absl::StatusOr<std::string> ImageStore::NewTmpDir() {
  std::string dir = StrCat(options_.dir, "/tmp/", GenerateId().substr(0, 16));
  if (::mkdir(dir.c_str(), 0711) != 0)
    return ErrnoToStatus(errno, StrCat("creating \"", dir, "\""));
  return dir;
}

ImageStore::Entry* ImageStore::FindLocked(std::string_view name_or_id) {
  std::string id;
  if (IsSha256Digest(name_or_id)) {
    id = std::string(name_or_id);
  } else if (IsSha256Digest(StrCat(kSha256Prefix, name_or_id))) {
    id = StrCat(kSha256Prefix, name_or_id);
  }
  if (!id.empty()) {
    auto it = images_.find(id);
    return it != images_.end() && !it->second.removed ? &it->second : nullptr;
  }
  // A name as stored (translated HTTP names need not be references), then
  // the normalised reference.
  std::string tag(name_or_id);
  std::string digest;
  if (absl::StatusOr<Reference> ref = ParseReference(name_or_id); ref.ok()) {
    if (!ref->digest.empty()) {
      digest = ref->DigestedString(ref->digest);
      tag.clear();
    } else {
      tag = ref->TaggedString();
    }
  }
  for (auto& [image_id, entry] : images_) {
    if (entry.removed) continue;
    const StoredImage& image = entry.image;
    if (std::find(image.repo_tags.begin(), image.repo_tags.end(), name_or_id) !=
            image.repo_tags.end() ||
        (!tag.empty() &&
         std::find(image.repo_tags.begin(), image.repo_tags.end(), tag) != image.repo_tags.end()) ||
        (!digest.empty() && std::find(image.repo_digests.begin(), image.repo_digests.end(),
                                      digest) != image.repo_digests.end())) {
      return &entry;
    }
  }
  return nullptr;
}

std::optional<StoredImage> ImageStore::Find(std::string_view name_or_id) const {
  for (const StoredImage& image : local_) {
    std::string hex(DigestHex(image.id));
    if (name_or_id == image.id || name_or_id == hex) return image;
    absl::StatusOr<Reference> ref = ParseReference(name_or_id);
    if (ref.ok() && ref->digest.empty() && ref->TaggedString() == image.repo_tags[0]) return image;
    if (name_or_id == image.repo_tags[0]) return image;
  }
  std::lock_guard lock(mu_);
  Entry* entry = const_cast<ImageStore*>(this)->FindLocked(name_or_id);
  if (entry == nullptr) return std::nullopt;
  return entry->image;
}

std::vector<StoredImage> ImageStore::List() const {
  std::vector<StoredImage> out = local_;
  std::lock_guard lock(mu_);
  for (const auto& [id, entry] : images_) {
    if (!entry.removed) out.push_back(entry.image);
  }
  return out;
}

StoreUsage ImageStore::Usage() const {
  StoreUsage usage{.bytes = 0, .inodes = 3};  // images/, sha256/, tmp/
  std::lock_guard lock(mu_);
  for (const auto& [id, entry] : images_) {
    usage.bytes += entry.image.size;
    usage.inodes += entry.image.inodes + 2;  // Its directory and image.json.
  }
  return usage;
}

absl::StatusOr<std::string> ImageStore::Pull(std::string_view name, const Credentials& credentials,
                                             const PullProgressFn& progress) {
  if (std::optional<StoredImage> local = Find(name); local.has_value() && local->pinned) {
    return local->id;  // A local image is always present.
  }
  std::string key(name);
  if (absl::StatusOr<Reference> ref = ParseReference(name); ref.ok()) key = ref->String();

  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    std::unique_lock lock(mu_);
    if (cancelled_) return absl::CancelledError("vmletd is shutting down");
    auto it = flights_.find(key);
    if (it == flights_.end()) {
      flight = std::make_shared<Flight>();
      flights_.emplace(key, flight);
      leader = true;
    } else {
      flight = it->second;
    }
  }
  if (!leader) {
    kLog.Info("pull of {} joins the pull already in progress", key);
    if (progress) progress({.phase = "waiting"});
    std::unique_lock lock(mu_);
    flights_done_.wait(lock, [&] { return flight->done; });
    return flight->result;
  }
  // The bytes this pull downloaded, for pulled_bytes().
  int64_t downloaded = 0;
  absl::StatusOr<std::string> result = PullOnce(name, credentials, [&](const PullProgress& update) {
    downloaded = std::max(downloaded, update.bytes_done);
    if (progress) progress(update);
  });
  if (result.ok()) pulled_bytes_ += static_cast<uint64_t>(downloaded);
  {
    std::lock_guard lock(mu_);
    flight->result = result;
    flight->done = true;
    flights_.erase(key);
  }
  flights_done_.notify_all();
  return result;
}

absl::StatusOr<std::string> ImageStore::PullOnce(std::string_view name,
                                                 const Credentials& credentials,
                                                 const PullProgressFn& progress) {
  if (translator_.has_value()) {
    if (std::optional<Translator::Match> match = translator_->Translate(name)) {
      return PullFromUrl(name, *match, progress);
    }
  }
  VMLET_ASSIGN_OR_RETURN(Reference ref, ParseReference(name));
  return PullFromRegistry(ref, credentials, progress);
}

absl::StatusOr<std::string> ImageStore::PullFromRegistry(const Reference& ref,
                                                         const Credentials& credentials,
                                                         const PullProgressFn& progress) {
  const std::string reference = ref.String();
  RegistrySettings settings;
  if (auto it = options_.registries.find(ref.domain); it != options_.registries.end()) {
    settings = it->second;
  }
  RegistryClient client(ref, settings, credentials, options_.client);
  if (progress) progress({.phase = "resolving"});
  VMLET_ASSIGN_OR_RETURN(ResolvedManifest manifest, client.ResolveManifest());

  StoredImage image{.id = manifest.config.digest, .source = "registry", .origin = manifest.digest};
  AddUnique(image.repo_tags, ref.TaggedString());
  AddUnique(image.repo_digests, ref.DigestedString(manifest.digest));
  bool stored = false;
  {
    std::lock_guard lock(mu_);
    stored = images_.contains(image.id);
  }
  if (stored) {
    kLog.Info("{} is image {}, stored already: adding its names", reference, image.id);
    return Commit("", std::move(image));
  }

  int64_t total = manifest.config.size;
  for (const Descriptor& layer : manifest.layers) {
    if (!IsLayerMediaType(layer.media_type)) {
      return absl::FailedPreconditionError(StrCat(
          "image \"", reference, "\" has layer ", layer.digest, " of media type \"",
          layer.media_type, "\": expected an OCI or Docker layer (tar, tar+gzip or tar+zstd)"));
    }
    total += layer.size;
  }
  VMLET_ASSIGN_OR_RETURN(std::string config_bytes, client.FetchBlob(manifest.config));
  VMLET_ASSIGN_OR_RETURN(image.config, ParseRunConfig(config_bytes, manifest.config.digest));
  int64_t done = manifest.config.size;
  if (progress) progress({.phase = "downloading", .bytes_done = done, .bytes_total = total});

  VMLET_ASSIGN_OR_RETURN(std::string tmp, NewTmpDir());
  ScopeGuard remove_tmp([&] { (void)RemoveTree(tmp); });
  const std::string rootfs = StrCat(tmp, "/rootfs");
  VMLET_RETURN_IF_ERROR(MakeDirs(rootfs, 0755));
  VMLET_FAULT_POINT("image_store.pull.after_tmp_dir");
  for (const Descriptor& layer : manifest.layers) {
    // The download feeds the extractor through a pipe: the layer is
    // verified as it streams and never stored twice.
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "creating a pipe");
    ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    absl::Status streamed;
    const int64_t layer_start = done;
    std::thread writer([&] {
      bool first_chunk = true;
      streamed = client.StreamBlob(
          layer,
          [&](std::string_view chunk) {
            if (cancelled_) return absl::CancelledError("vmletd is shutting down");
            if (!first_chunk) VMLET_FAULT_POINT("image_store.pull.mid_layer");
            first_chunk = false;
            return WriteAll(fds[1], chunk);
          },
          [&](int64_t bytes, int64_t) {
            if (progress) {
              progress({.phase = "downloading",
                        .bytes_done = layer_start + bytes,
                        .bytes_total = total});
            }
          });
      ::close(fds[1]);
    });
    absl::StatusOr<ExtractStats> extracted = ExtractLayer(fds[0], rootfs, &cancelled_);
    ::close(fds[0]);  // A writer still writing gets EPIPE and stops.
    writer.join();
    done += layer.size;
    if (!extracted.ok() && (streamed.ok() || streamed.code() == ReaderGone().code())) {
      return Annotate(extracted.status(),
                      StrCat("image \"", reference, "\": layer ", layer.digest));
    }
    VMLET_RETURN_IF_ERROR(Annotate(streamed, StrCat("pulling \"", reference, "\"")));
    VMLET_RETURN_IF_ERROR(
        Annotate(extracted.status(), StrCat("image \"", reference, "\": layer ", layer.digest)));
    VMLET_FAULT_POINT("image_store.pull.after_layer");
  }
  if (progress) progress({.phase = "verifying", .bytes_done = done, .bytes_total = total});
  image.layout = DetectLayout(rootfs);
  remove_tmp.Dismiss();
  absl::StatusOr<std::string> id = SealAndCommit(tmp, std::move(image));
  if (id.ok() && progress) progress({.phase = "done", .bytes_done = done, .bytes_total = total});
  return id;
}

absl::StatusOr<std::string> ImageStore::PullFromUrl(std::string_view name,
                                                    const Translator::Match& match,
                                                    const PullProgressFn& progress) {
  if (progress) progress({.phase = "downloading"});
  StoredImage image{.source = "http", .origin = match.url};
  absl::StatusOr<Reference> ref = ParseReference(name);
  image.repo_tags.push_back(ref.ok() && ref->digest.empty() ? ref->TaggedString()
                                                            : std::string(name));
  absl::StatusOr<std::string> id = StoreDisk(
      DiskFileName(match.url),
      [&](DiskWriter& writer) {
        return Annotate(
            DownloadUrl(
                match.url, match.tls,
                [&](std::string_view chunk) {
                  if (cancelled_) return absl::CancelledError("vmletd is shutting down");
                  return writer.Write(chunk);
                },
                [&](int64_t bytes, int64_t total) {
                  if (progress) {
                    progress({.phase = "downloading", .bytes_done = bytes, .bytes_total = total});
                  }
                }),
            StrCat("pulling \"", name, "\" from ", match.url));
      },
      std::move(image));
  if (id.ok() && progress) progress({.phase = "done", .bytes_done = 0, .bytes_total = 0});
  return id;
}

absl::StatusOr<std::string> ImageStore::Import(const std::string& path, std::string_view name) {
  VMLET_ASSIGN_OR_RETURN(Reference ref, ParseReference(name));
  if (!ref.digest.empty()) {
    return absl::InvalidArgumentError(StrCat("name \"", name,
                                             "\" has a digest: expected a tagged name, the "
                                             "digest of an imported image is computed"));
  }
  int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return ErrnoToStatus(errno, StrCat("opening \"", path, "\""));
  ScopeGuard close_in([&] { ::close(in); });
  struct stat st;
  if (::fstat(in, &st) != 0) return ErrnoToStatus(errno, StrCat("inspecting \"", path, "\""));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat("\"", path, "\" is not a regular file: expected a qcow2 or raw disk image"));
  }
  VMLET_ASSIGN_OR_RETURN(std::string format, DetectDiskFormat(path));
  StoredImage image{.source = "import", .origin = path};
  image.repo_tags.push_back(ref.TaggedString());
  return StoreDisk(
      StrCat("root.", format),
      [&](DiskWriter& writer) -> absl::Status {
        std::string buffer(1 << 20, '\0');
        for (;;) {
          if (cancelled_) return absl::CancelledError("vmletd is shutting down");
          ssize_t n = ::read(in, buffer.data(), buffer.size());
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return ErrnoToStatus(errno, StrCat("reading \"", path, "\""));
          if (n == 0) return absl::OkStatus();
          VMLET_RETURN_IF_ERROR(
              writer.Write(std::string_view(buffer.data(), static_cast<size_t>(n))));
        }
      },
      std::move(image));
}

absl::StatusOr<std::string> ImageStore::StoreDisk(
    std::string_view file_name, const std::function<absl::Status(DiskWriter&)>& fill,
    StoredImage image) {
  VMLET_ASSIGN_OR_RETURN(std::string tmp, NewTmpDir());
  ScopeGuard remove_tmp([&] { (void)RemoveTree(tmp); });
  const std::string disk_dir = StrCat(tmp, "/rootfs/disk");
  VMLET_RETURN_IF_ERROR(MakeDirs(disk_dir, 0755));
  VMLET_ASSIGN_OR_RETURN(DiskWriter writer, DiskWriter::Create(StrCat(disk_dir, "/", file_name)));
  VMLET_RETURN_IF_ERROR(fill(writer));
  VMLET_ASSIGN_OR_RETURN(image.id, writer.Finish());
  image.layout = LayoutKind::kDisk;
  remove_tmp.Dismiss();
  return SealAndCommit(tmp, std::move(image));
}

absl::StatusOr<std::string> ImageStore::SealAndCommit(const std::string& tmp_dir,
                                                      StoredImage image) {
  absl::StatusOr<StoreUsage> usage = SealTree(StrCat(tmp_dir, "/rootfs"));
  if (!usage.ok()) {
    (void)RemoveTree(tmp_dir);
    return usage.status();
  }
  image.size = usage->bytes;
  image.inodes = usage->inodes;
  return Commit(tmp_dir, std::move(image));
}

absl::StatusOr<std::string> ImageStore::Commit(const std::string& tmp_dir, StoredImage image) {
  ScopeGuard remove_tmp([&] {
    if (!tmp_dir.empty()) (void)RemoveTree(tmp_dir);
  });
  std::lock_guard lock(mu_);
  auto it = images_.find(image.id);
  if (it == images_.end()) {
    if (tmp_dir.empty()) {
      return absl::NotFoundError(StrCat("image ", image.id, " was removed while it was pulled"));
    }
    image.stored_at = NowNanos();
    image.rootfs = StrCat(ImageDir(image.id), "/rootfs");
    // image.json first; the rename then makes the whole image visible at once.
    VMLET_RETURN_IF_ERROR(
        WriteFileAtomically(StrCat(tmp_dir, "/", kMetaFile), MetaJson(image, false), 0644));
    VMLET_FAULT_POINT("image_store.commit.after_meta");
    if (::rename(tmp_dir.c_str(), ImageDir(image.id).c_str()) != 0) {
      return ErrnoToStatus(errno, StrCat("storing image ", image.id));
    }
    VMLET_FAULT_POINT("image_store.commit.after_rename");
    remove_tmp.Dismiss();
    std::string id = image.id;  // Copied: the entry takes `image` by move.
    it = images_.emplace(std::move(id), Entry{.image = std::move(image)}).first;
  } else {
    // Stored already (by another name, or hidden by a removal while a
    // container used it): only the names are added.
    it->second.removed = false;
    for (const std::string& tag : image.repo_tags) AddUnique(it->second.image.repo_tags, tag);
    for (const std::string& digest : image.repo_digests) {
      AddUnique(it->second.image.repo_digests, digest);
    }
  }
  StoredImage& stored = it->second.image;
  for (const std::string& tag : stored.repo_tags) UntagEverywhereLocked(tag, stored.id);
  VMLET_RETURN_IF_ERROR(Annotate(WriteMeta(stored), StrCat("recording image ", stored.id)));
  kLog.Info("image {} stored as {}", stored.id,
            stored.repo_tags.empty() ? std::string("<untagged>") : stored.repo_tags.back());
  return stored.id;
}

void ImageStore::UntagEverywhereLocked(const std::string& tag, const std::string& keeper) {
  for (auto& [id, entry] : images_) {
    if (id == keeper) continue;
    auto& tags = entry.image.repo_tags;
    if (std::erase(tags, tag) > 0) {
      kLog.Info("tag {} moved from image {} to {}", tag, id, keeper);
      if (absl::Status status = WriteMeta(entry.image); !status.ok()) {
        kLog.Error("recording image {}: {}", id, status.message());
      }
    }
  }
}

absl::Status ImageStore::Remove(std::string_view name_or_id) {
  if (std::optional<StoredImage> found = Find(name_or_id); found.has_value() && found->pinned) {
    return absl::FailedPreconditionError(
        StrCat("image \"", found->repo_tags[0],
               "\" is configured in local_images and cannot be removed through the CRI: remove "
               "it from vmlet.yaml"));
  }
  std::lock_guard lock(mu_);
  Entry* entry = FindLocked(name_or_id);
  if (entry == nullptr) return absl::OkStatus();  // Removing what is not there succeeds.
  const std::string id = entry->image.id;
  if (options_.in_use && options_.in_use(id)) {
    // Hidden now, deleted by Collect once its containers are gone.
    entry->removed = true;
    entry->image.repo_tags.clear();
    entry->image.repo_digests.clear();
    kLog.Info("image {} removed; its files stay until no container uses it", id);
    return Annotate(WriteMeta(entry->image), StrCat("recording the removal of image ", id));
  }
  DeleteLocked(id);
  return absl::OkStatus();
}

void ImageStore::DeleteLocked(const std::string& id) {
  // Renamed under tmp/ first: gone from the store at once, and a crash
  // during the deletion leaves only what the next start removes.
  absl::StatusOr<std::string> trash = NewTmpDir();
  std::string doomed = ImageDir(id);
  if (trash.ok() && ::rename(doomed.c_str(), StrCat(*trash, "/image").c_str()) == 0) {
    doomed = *trash;
  }
  if (absl::Status status = RemoveTree(doomed); !status.ok()) {
    kLog.Error("deleting image {}: {}", id, status.message());
  }
  images_.erase(id);
  kLog.Info("image {} deleted", id);
}

void ImageStore::Collect() {
  std::lock_guard lock(mu_);
  std::vector<std::string> unused;
  for (const auto& [id, entry] : images_) {
    if (entry.removed && !(options_.in_use && options_.in_use(id))) unused.push_back(id);
  }
  for (const std::string& id : unused) DeleteLocked(id);
}

}  // namespace vmlet::image

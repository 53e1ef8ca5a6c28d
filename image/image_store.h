// The node's images: pulled from OCI registries or over HTTP(S), imported
// from a file, or configured as local directories. Pulled content lives
// under <state_dir>/images:
//
//   tmp/<random>/                 a pull or import in progress (deleted at start-up)
//   sha256/<hex>/image.json       one stored image: tags, digests, config, sizes
//   sha256/<hex>/rootfs/          its filesystem (disk/<file> or boot/...), read-only
//
// An image is assembled under tmp/, verified, described in image.json and
// only then renamed into sha256/: an interrupted pull leaves nothing visible,
// and whatever it left is removed by the next Open.
//
// An image that a container still uses is not deleted by Remove: it loses
// its names (no longer listed or found) and its files are deleted by
// Collect once no container uses it.
//
// Thread-safe: every method may be called from any thread.
#ifndef VMLET_IMAGE_IMAGE_STORE_H_
#define VMLET_IMAGE_IMAGE_STORE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "image/http_source.h"
#include "image/registry_client.h"

namespace vmlet::image {

class DiskWriter;

// The parts of an OCI image config that describe how to run it.
struct RunConfig {
  std::string user;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::map<std::string, std::string> labels;
};

// What an image's filesystem holds (image_layout.h).
enum class LayoutKind { kContainer, kDisk, kKernel };
std::string_view LayoutKindName(LayoutKind kind);

struct StoredImage {
  std::string id;  // "sha256:<hex>": the config digest, or the file digest of a disk.
  std::vector<std::string> repo_tags;     // "registry/repository:tag".
  std::vector<std::string> repo_digests;  // "registry/repository@sha256:...".
  uint64_t size = 0;                      // Bytes allocated on disk by the image's files.
  uint64_t inodes = 0;                    // Files and directories of the image.
  std::string source;                     // "registry", "http", "import" or "local".
  std::string origin;                     // The manifest digest, URL or file it came from.
  LayoutKind layout = LayoutKind::kContainer;
  RunConfig config;
  std::string rootfs;   // The image's filesystem.
  bool pinned = false;  // Local images: never removed through the CRI.
  int64_t stored_at = 0;
};

struct PullProgress {
  std::string phase;  // "resolving", "downloading", "verifying", "done".
  int64_t bytes_done = 0;
  int64_t bytes_total = -1;  // -1 while unknown.
};
// Called on the pulling thread; must be quick.
using PullProgressFn = std::function<void(const PullProgress&)>;

struct ImageStoreOptions {
  std::string dir;  // <state_dir>/images
  // Settings by registry host ("127.0.0.1:5000", "docker.io").
  std::map<std::string, RegistrySettings> registries;
  std::vector<TranslationRule> translations;
  // Image name -> directory holding an image layout (config local_images).
  std::map<std::string, std::string> local_images;
  RegistryClientOptions client;
  // True while a container uses the image id; set by the CRI service.
  std::function<bool(const std::string& image_id)> in_use;
};

struct StoreUsage {
  uint64_t bytes = 0;
  uint64_t inodes = 0;
};

class ImageStore {
 public:
  // Creates the directories, removes leftovers of interrupted pulls and
  // loads every stored image. An unreadable image is removed (its content
  // can be pulled again) and reported in the log.
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(ImageStoreOptions options);
  // Cancels pulls in progress and waits for them.
  ~ImageStore();

  // Makes pulls and imports in progress fail with CANCELLED soon, and new
  // ones at once: called when vmletd shuts down, so that calls in flight end.
  void CancelAll() { cancelled_ = true; }

  ImageStore(const ImageStore&) = delete;
  ImageStore& operator=(const ImageStore&) = delete;

  // Pulls `name` (an OCI reference, or a name a translation rule maps to a
  // URL) and returns the image id. Concurrent pulls of the same name share
  // one download. An image already stored is only tagged again.
  absl::StatusOr<std::string> Pull(std::string_view name, const Credentials& credentials,
                                   const PullProgressFn& progress = nullptr);

  // Stores the disk file `path` (qcow2 or raw) as the image `name`.
  absl::StatusOr<std::string> Import(const std::string& path, std::string_view name);

  // By id ("sha256:<hex>" or the hex alone), by tag or by digest reference;
  // an untagged name means ":latest".
  std::optional<StoredImage> Find(std::string_view name_or_id) const;
  std::vector<StoredImage> List() const;

  // Removes the image `name_or_id` names (by any of its names, with all
  // its names, as containerd does). Absent: OK. A local image:
  // FAILED_PRECONDITION. While a container uses the image it is only
  // hidden, and Collect deletes it later.
  absl::Status Remove(std::string_view name_or_id);

  // Deletes removed images that no container uses any more. Called after a
  // container is removed.
  void Collect();

  StoreUsage Usage() const;
  // Bytes downloaded by the pulls that succeeded since the store opened.
  uint64_t pulled_bytes() const { return pulled_bytes_; }
  const std::string& dir() const { return options_.dir; }

 private:
  struct Flight;
  struct Entry {
    StoredImage image;
    bool removed = false;  // Hidden; deleted once unused.
  };

  explicit ImageStore(ImageStoreOptions options) : options_(std::move(options)) {}
  absl::Status Load();

  absl::StatusOr<std::string> PullOnce(std::string_view name, const Credentials& credentials,
                                       const PullProgressFn& progress);
  absl::StatusOr<std::string> PullFromRegistry(const Reference& ref, const Credentials& credentials,
                                               const PullProgressFn& progress);
  absl::StatusOr<std::string> PullFromUrl(std::string_view name, const Translator::Match& match,
                                          const PullProgressFn& progress);
  // Stores a disk image written by `fill` as rootfs/disk/<file_name> of a
  // new image whose id is the disk's digest.
  absl::StatusOr<std::string> StoreDisk(std::string_view file_name,
                                        const std::function<absl::Status(DiskWriter&)>& fill,
                                        StoredImage image);
  // Makes `tmp_dir`/rootfs read-only, records its size and commits it; the
  // directory is gone afterwards, whatever the outcome.
  absl::StatusOr<std::string> SealAndCommit(const std::string& tmp_dir, StoredImage image);
  // Moves the assembled image in `tmp_dir` into the store under `image.id`
  // (or, when that id is stored already, drops `tmp_dir`) and gives it the
  // names of `image`.
  absl::StatusOr<std::string> Commit(const std::string& tmp_dir, StoredImage image);
  absl::StatusOr<std::string> NewTmpDir();

  // Called with mu_ held.
  Entry* FindLocked(std::string_view name_or_id);
  absl::Status WriteMeta(const StoredImage& image);
  void UntagEverywhereLocked(const std::string& tag, const std::string& keeper);
  void DeleteLocked(const std::string& id);

  std::string ImageDir(std::string_view id) const;

  const ImageStoreOptions options_;
  std::optional<Translator> translator_;
  std::vector<StoredImage> local_;  // Read-only after Open.

  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> images_;  // By id.
  std::map<std::string, std::shared_ptr<Flight>, std::less<>> flights_;
  std::condition_variable flights_done_;
  std::atomic<bool> cancelled_{false};
  std::atomic<uint64_t> pulled_bytes_{0};
};

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_IMAGE_STORE_H_

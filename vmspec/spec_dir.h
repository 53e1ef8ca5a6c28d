// VM specs from files: the `*.yaml` and `*.yml` files of vmspec_dir (config
// key; /etc/vmlet/vmspecs.d by default), each holding one or more specs as
// YAML documents (yaml.h; a spec without a namespace is of "default", as
// with `vmletctl spec apply`). The specs go into the SpecStore with the file's
// path as their source, at start and whenever the files change:
//
//   - a new or changed file is applied: its specs are created or updated,
//     and specs it no longer holds are deleted;
//   - the specs of a removed file are deleted, also when the file went away
//     while vmletd was not running;
//   - a file that does not parse or whose specs do not validate is logged
//     with its error and leaves the specs it gave before in place.
//
// Changes are noticed through inotify, acted upon once the directory has
// been quiet for `debounce`. A missing directory is fine: it is looked for
// again every few seconds and read once it appears. Hidden files (".x.yaml")
// are ignored, as editors write their temporary files so.
//
// Threading: Start and Stop (and the destructor) from one thread; Rescan
// from any thread. The watcher's own thread calls into the store.
#ifndef VMLET_VMSPEC_SPEC_DIR_H_
#define VMLET_VMSPEC_SPEC_DIR_H_

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmspec/spec_store.h"

namespace vmlet::vmspec {

struct SpecDirOptions {
  std::string dir;
  absl::Duration debounce = absl::Milliseconds(200);
  // How often a missing directory is looked for.
  absl::Duration missing_dir_poll = absl::Seconds(2);
  // Larger files are refused (logged, as a bad file).
  size_t max_file_bytes = 4 << 20;
};

class SpecDirWatcher {
 public:
  // Reads the directory once (before returning) and starts watching it.
  // `store` must outlive the watcher. Errors only when the watcher itself
  // cannot run (inotify or its thread); bad files are logged.
  static absl::StatusOr<std::unique_ptr<SpecDirWatcher>> Start(SpecDirOptions options,
                                                               SpecStore* store);
  // Stop().
  ~SpecDirWatcher();

  // Ends the watching thread and waits for it. Idempotent.
  void Stop();

  // Reads the directory now and applies what changed.
  void Rescan();

 private:
  using Key = std::pair<std::string, std::string>;
  struct FileState {
    std::set<Key> keys;  // The specs the file gave last.
    size_t hash = 0;     // Of the contents last applied; 0: never read.
    bool bad = false;    // Its last contents were refused (logged once).
  };

  SpecDirWatcher(SpecDirOptions options, SpecStore* store, int inotify_fd, int stop_fd);

  void Run();
  // Adds the inotify watch when the directory exists and has none; whether
  // it is watched.
  bool Watch();
  // Applies one file (read already); caller holds scan_mu_.
  void ApplyFile(const std::string& path, const std::string& contents, FileState& state);
  // Deletes the specs of a file that went away; caller holds scan_mu_.
  void ForgetFile(const std::string& path, FileState& state);

  const SpecDirOptions options_;
  SpecStore* const store_;
  const int inotify_fd_;
  const int stop_fd_;  // eventfd that wakes the thread.
  int watch_ = -1;     // Only the thread (or Start, before it) touches it.
  std::mutex scan_mu_;
  std::map<std::string, FileState> files_;  // By path; guarded by scan_mu_.
  std::thread thread_;
};

}  // namespace vmlet::vmspec

#endif  // VMLET_VMSPEC_SPEC_DIR_H_

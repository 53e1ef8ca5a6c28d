#include "vmspec/spec_dir.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <vector>

#include "base/file_util.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "vmspec/validate.h"
#include "vmspec/yaml.h"

namespace vmlet::vmspec {
namespace {

constexpr Logger kLog("vmspec");

// The namespace of a spec that names none.
constexpr std::string_view kDefaultNamespace = "default";

constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                                IN_MOVED_TO | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF |
                                IN_MOVE_SELF | IN_ONLYDIR;

bool IsSpecFileName(std::string_view name) {
  return !name.starts_with(".") && (name.ends_with(".yaml") || name.ends_with(".yml"));
}

// The contents of the regular file `path`, of at most `max_bytes`.
// NOT_FOUND when it does not exist (or is not a regular file: a directory
// named x.yaml is no spec file).
absl::StatusOr<std::string> ReadSpecFile(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening \"", path, "\""));
  ScopeGuard close_fd([fd] { ::close(fd); });
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoToStatus(errno, StrCat("reading \"", path, "\""));
  if (!S_ISREG(st.st_mode)) {
    return absl::NotFoundError(StrCat("\"", path, "\" is not a regular file"));
  }
  std::string contents;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("reading \"", path, "\""));
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
    if (contents.size() > max_bytes) {
      return absl::InvalidArgumentError(StrCat("file \"", path, "\" is larger than ", max_bytes,
                                               " bytes, the most a VM spec file may hold"));
    }
  }
  return contents;
}

std::string KeyName(const std::pair<std::string, std::string>& key) {
  return StrCat(key.first, "/", key.second);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SpecDirWatcher>> SpecDirWatcher::Start(SpecDirOptions options,
                                                                      SpecStore* store) {
  const int inotify_fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd < 0) return ErrnoToStatus(errno, "vmspec_dir: inotify_init1");
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    absl::Status status = ErrnoToStatus(errno, "vmspec_dir: eventfd");
    ::close(inotify_fd);
    return status;
  }
  std::unique_ptr<SpecDirWatcher> watcher(
      new SpecDirWatcher(std::move(options), store, inotify_fd, stop_fd));
  if (!watcher->Watch()) {
    kLog.Info("vmspec_dir {} does not exist (yet): no VM specs from files", watcher->options_.dir);
  }
  watcher->Rescan();
  watcher->thread_ = std::thread([w = watcher.get()] { w->Run(); });
  return watcher;
}

SpecDirWatcher::SpecDirWatcher(SpecDirOptions options, SpecStore* store, int inotify_fd,
                               int stop_fd)
    : options_(std::move(options)), store_(store), inotify_fd_(inotify_fd), stop_fd_(stop_fd) {
  // Specs a file gave in an earlier run: deleted by the first scan if
  // their file is gone.
  for (auto& [source, keys] : store_->FileSourcedKeys()) {
    files_[source].keys.insert(keys.begin(), keys.end());
  }
}

SpecDirWatcher::~SpecDirWatcher() {
  Stop();
  ::close(inotify_fd_);
  ::close(stop_fd_);
}

void SpecDirWatcher::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof(one));
  thread_.join();
}

bool SpecDirWatcher::Watch() {
  if (watch_ >= 0) return true;
  watch_ = ::inotify_add_watch(inotify_fd_, options_.dir.c_str(), kWatchMask);
  if (watch_ < 0 && errno != ENOENT && errno != ENOTDIR) {
    kLog.Warning("vmspec_dir: watching {}: {}", options_.dir,
                 ErrnoToStatus(errno, "inotify_add_watch").message());
  }
  return watch_ >= 0;
}

void SpecDirWatcher::Run() {
  using Clock = std::chrono::steady_clock;
  const auto debounce = absl::ToChronoMilliseconds(options_.debounce);
  const int poll_ms = static_cast<int>(absl::ToInt64Milliseconds(options_.missing_dir_poll));
  bool pending = false;
  Clock::time_point last_event;
  alignas(inotify_event) char buffer[8192];
  while (true) {
    int timeout_ms = -1;
    if (pending) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          last_event + debounce - Clock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    } else if (watch_ < 0) {
      timeout_ms = poll_ms;
    }
    pollfd fds[2] = {{.fd = inotify_fd_, .events = POLLIN, .revents = 0},
                     {.fd = stop_fd_, .events = POLLIN, .revents = 0}};
    if (::poll(fds, 2, timeout_ms) < 0) {
      if (errno == EINTR) continue;
      kLog.Error("vmspec_dir: poll: {}", ErrnoToStatus(errno, "poll").message());
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents != 0) {
      while (true) {
        const ssize_t n = ::read(inotify_fd_, buffer, sizeof(buffer));
        if (n <= 0) break;  // EAGAIN: drained.
        for (ssize_t offset = 0; offset < n;) {
          const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
          if (event->wd == watch_ && (event->mask & (IN_IGNORED | IN_MOVE_SELF)) != 0) {
            // The directory went away or was renamed: look for it again.
            if ((event->mask & IN_IGNORED) == 0) (void)::inotify_rm_watch(inotify_fd_, watch_);
            watch_ = -1;
          }
          offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        }
        pending = true;
        last_event = Clock::now();
      }
    }
    if (pending && Clock::now() >= last_event + debounce) {
      pending = false;
      Rescan();
    }
    if (watch_ < 0 && !pending && Watch()) Rescan();
  }
}

void SpecDirWatcher::Rescan() {
  std::lock_guard lock(scan_mu_);
  std::set<std::string> seen;
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(options_.dir);
  if (!names.ok() && !absl::IsNotFound(names.status())) {
    // Unreadable is not empty: keep every spec until it can be read.
    kLog.Error("vmspec_dir: reading {}: {}", options_.dir, names.status().message());
    return;
  }
  for (const std::string& name : names.ok() ? *names : std::vector<std::string>()) {
    if (!IsSpecFileName(name)) continue;
    const std::string path = StrCat(options_.dir, "/", name);
    absl::StatusOr<std::string> contents = ReadSpecFile(path, options_.max_file_bytes);
    if (absl::IsNotFound(contents.status())) continue;
    seen.insert(path);
    FileState& state = files_[path];
    if (!contents.ok()) {
      if (!state.bad) {
        kLog.Error("vmspec_dir: ignoring {} (its earlier specs stay): {}", path,
                   contents.status().message());
      }
      state.bad = true;
      state.hash = 0;
      continue;
    }
    const size_t hash = std::hash<std::string>()(*contents);
    if (state.hash == hash && hash != 0) continue;
    state.hash = hash;
    ApplyFile(path, *contents, state);
  }
  for (auto it = files_.begin(); it != files_.end();) {
    if (seen.contains(it->first)) {
      ++it;
      continue;
    }
    ForgetFile(it->first, it->second);
    it = files_.erase(it);
  }
}

void SpecDirWatcher::ApplyFile(const std::string& path, const std::string& contents,
                               FileState& state) {
  absl::StatusOr<std::vector<v1::VmSpec>> specs = ParseVmSpecYaml(contents, path);
  absl::Status status = specs.status();
  std::set<Key> keys;
  if (status.ok()) {
    for (v1::VmSpec& spec : *specs) {
      // As `vmletctl spec apply` does.
      if (spec.metadata().namespace_().empty()) {
        spec.mutable_metadata()->set_namespace_(std::string(kDefaultNamespace));
      }
      Key key{spec.metadata().namespace_(), spec.metadata().name()};
      if (absl::Status valid = ValidateVmSpec(spec); !valid.ok()) {
        status = Annotate(valid, StrCat("VM spec \"", KeyName(key), "\""));
        break;
      }
      if (!keys.insert(key).second) {
        status = absl::InvalidArgumentError(
            StrCat("VM spec \"", KeyName(key), "\" appears more than once in the file"));
        break;
      }
    }
  }
  if (!status.ok()) {
    kLog.Error("vmspec_dir: ignoring {} (its earlier specs stay): {}", path, status.message());
    state.bad = true;
    return;
  }
  state.bad = false;
  std::set<Key> applied;
  for (const v1::VmSpec& spec : *specs) {
    Key key{spec.metadata().namespace_(), spec.metadata().name()};
    absl::StatusOr<v1::VmSpec> stored = store_->Apply(spec, path);
    if (!stored.ok()) {
      kLog.Error("vmspec_dir: {}: VM spec \"{}\" not applied: {}", path, KeyName(key),
                 stored.status().message());
      if (state.keys.contains(key)) applied.insert(key);  // Its earlier version stays.
      continue;
    }
    applied.insert(key);
    kLog.Info("vmspec_dir: {}: VM spec \"{}\" at generation {}", path, KeyName(key),
              stored->metadata().generation());
  }
  for (const Key& key : state.keys) {
    if (applied.contains(key)) continue;
    if (absl::Status deleted = store_->Delete(key.first, key.second, path); !deleted.ok()) {
      kLog.Error("vmspec_dir: {}: deleting VM spec \"{}\": {}", path, KeyName(key),
                 deleted.message());
      continue;
    }
    kLog.Info("vmspec_dir: {}: VM spec \"{}\" deleted (no longer in the file)", path, KeyName(key));
  }
  state.keys = std::move(applied);
}

void SpecDirWatcher::ForgetFile(const std::string& path, FileState& state) {
  for (const Key& key : state.keys) {
    if (absl::Status deleted = store_->Delete(key.first, key.second, path); !deleted.ok()) {
      kLog.Error("vmspec_dir: deleting VM spec \"{}\" of removed file {}: {}", KeyName(key), path,
                 deleted.message());
      continue;
    }
    kLog.Info("vmspec_dir: VM spec \"{}\" deleted ({} was removed)", KeyName(key), path);
  }
  state.keys.clear();
}

}  // namespace vmlet::vmspec

#include "image/layer_extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::image {
namespace {

constexpr size_t kReadBlockSize = size_t{1} << 20;
// Zero runs are left as holes in units of this (the usual file system block).
constexpr uint64_t kHoleBlock = 4096;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

bool IsCancelled(const std::atomic<bool>* cancelled) {
  return cancelled != nullptr && cancelled->load(std::memory_order_relaxed);
}

absl::Status Cancelled() { return absl::CancelledError("extracting a layer: cancelled"); }

// The source of the archive: large sequential reads of the pipe.
struct Source {
  int fd;
  const std::atomic<bool>* cancelled;
  std::vector<char> buffer = std::vector<char>(kReadBlockSize);
  absl::Status status;  // Why a read failed, when it was not libarchive's doing.
  bool at_end = false;

  // Reads the next block into `buffer`: its size, 0 at the end, -1 on error.
  ssize_t Read() {
    if (IsCancelled(cancelled)) {
      status = Cancelled();
      return -1;
    }
    for (;;) {
      ssize_t n = ::read(fd, buffer.data(), buffer.size());
      if (n >= 0) {
        at_end = n == 0;
        return n;
      }
      if (errno == EINTR) continue;
      status = ErrnoToStatus(errno, "reading the layer");
      return -1;
    }
  }
};

la_ssize_t ReadCallback(struct archive* archive, void* data, const void** block) {
  auto* source = static_cast<Source*>(data);
  ssize_t n = source->Read();
  if (n < 0) {
    archive_set_error(archive, EIO, "%s", std::string(source->status.message()).c_str());
    return ARCHIVE_FATAL;
  }
  *block = source->buffer.data();
  return n;
}

// The path of an entry (or a link's target) as raw bytes: the locale's form
// when there is one, else the UTF-8 one (pax paths in the "C" locale).
const char* PathOf(const char* mbs, const char* utf8) { return mbs != nullptr ? mbs : utf8; }

// Splits an archive path into its components, without "." and empty ones.
// `what` names the path in messages: `layer entry "a/b"`.
absl::StatusOr<std::vector<std::string>> SplitArchivePath(std::string_view path,
                                                          const std::string& what) {
  if (!path.empty() && path.front() == '/') {
    return absl::InvalidArgumentError(StrCat(what, ": absolute paths are not allowed in a layer"));
  }
  std::vector<std::string> components;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view component = path.substr(start, slash - start);
    if (component == "..") {
      return absl::InvalidArgumentError(
          StrCat(what, ": \"..\" components are not allowed in a layer"));
    }
    if (!component.empty() && component != ".") components.emplace_back(component);
    start = slash + 1;
  }
  return components;
}

std::string JoinPath(const std::vector<std::string>& components, size_t count) {
  std::string joined;
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) joined.push_back('/');
    joined.append(components[i]);
  }
  return joined;
}

// Checks a symlink target lexically against the link's place, `depth`
// directories below the root. A ".." after a name is refused: the kernel
// resolves it from wherever that name leads (a symlink "s" -> "." makes
// "s/s/.." the root's parent), which no lexical check can know.
absl::Status CheckSymlinkTarget(std::string_view target, size_t depth, const std::string& what) {
  if (target.empty()) return absl::InvalidArgumentError(StrCat(what, ": empty symlink target"));
  if (target.front() == '/') {
    return absl::InvalidArgumentError(StrCat(what, ": symlink target \"", target,
                                             "\" is absolute: it would name a file of the host"));
  }
  bool seen_name = false;
  size_t start = 0;
  while (start <= target.size()) {
    size_t slash = target.find('/', start);
    if (slash == std::string_view::npos) slash = target.size();
    std::string_view component = target.substr(start, slash - start);
    start = slash + 1;
    if (component.empty() || component == ".") continue;
    if (component != "..") {
      seen_name = true;
      continue;
    }
    if (seen_name) {
      return absl::InvalidArgumentError(
          StrCat(what, ": symlink target \"", target,
                 "\" has \"..\" after a name: only leading \"..\" components are allowed"));
    }
    if (depth == 0) {
      return absl::InvalidArgumentError(
          StrCat(what, ": symlink target \"", target, "\" escapes the image root"));
    }
    --depth;
  }
  return absl::OkStatus();
}

bool IsAllZero(const char* data, size_t size) {
  return size == 0 || (data[0] == 0 && std::memcmp(data, data + 1, size - 1) == 0);
}

absl::Status PwriteAll(int fd, const char* data, size_t size, uint64_t offset,
                       const std::string& what) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat(what, ": writing"));
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

// Writes `data` at `offset` of a new file but for its all-zero blocks
// (aligned on the file's offsets), which stay holes.
absl::Status WriteSkippingZeros(int fd, const char* data, size_t size, uint64_t offset,
                                const std::string& what) {
  size_t pos = 0;
  size_t run_start = 0;
  bool in_run = false;
  while (pos < size) {
    const uint64_t file_offset = offset + pos;
    const size_t chunk =
        static_cast<size_t>(std::min<uint64_t>(size - pos, kHoleBlock - file_offset % kHoleBlock));
    if (!IsAllZero(data + pos, chunk)) {
      if (!in_run) run_start = pos;
      in_run = true;
    } else if (in_run) {
      VMLET_RETURN_IF_ERROR(
          PwriteAll(fd, data + run_start, pos - run_start, offset + run_start, what));
      in_run = false;
    }
    pos += chunk;
  }
  if (in_run) {
    VMLET_RETURN_IF_ERROR(
        PwriteAll(fd, data + run_start, size - run_start, offset + run_start, what));
  }
  return absl::OkStatus();
}

// Lists a directory (no "." or "..").
absl::StatusOr<std::vector<std::string>> ListAt(int dir_fd, const std::string& what) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat(what, ": listing"));
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    int saved_errno = errno;
    ::close(fd);
    return ErrnoToStatus(saved_errno, StrCat(what, ": listing"));
  }
  ScopeGuard close_dir([dir] { ::closedir(dir); });
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  return names;
}

// Applies the entries of one layer. Every path is resolved from the root's
// descriptor, one component at a time with O_NOFOLLOW.
class Extractor {
 public:
  Extractor(Fd root, struct archive* archive, const std::atomic<bool>* cancelled)
      : root_(std::move(root)), archive_(archive), cancelled_(cancelled) {}

  absl::Status Apply(struct archive_entry* entry);
  const ExtractStats& stats() const { return stats_; }

 private:
  // The directory of the first `count` components: the root's descriptor
  // for 0. Missing directories are made (0755) when `create`, else
  // NOT_FOUND.
  absl::StatusOr<Fd> WalkDirs(const std::vector<std::string>& components, size_t count, bool create,
                              const std::string& what);
  // WalkDirs, remembering the last directory: entries come grouped by
  // directory. The descriptor stays valid until the next call.
  absl::StatusOr<int> ParentDir(const std::vector<std::string>& components, bool create,
                                const std::string& what);
  absl::Status RemoveAt(int dir_fd, const std::string& name, const std::string& what);
  // Removes from a directory what this layer did not write.
  absl::Status ClearOpaque(int dir_fd, const std::string& relative, const std::string& what);
  absl::Status ApplyWhiteout(const std::vector<std::string>& components, const std::string& what);
  absl::Status MakeDirectory(int parent, const std::string& name, const struct stat* existing,
                             const std::string& what);
  absl::Status WriteRegular(struct archive_entry* entry, int parent, const std::string& name,
                            const std::string& what);
  absl::Status MakeHardLink(std::string_view target, int parent, const std::string& name,
                            const std::string& what);

  Fd root_;
  struct archive* archive_;
  const std::atomic<bool>* cancelled_;
  ExtractStats stats_;
  // Relative paths this layer wrote or passed through: whiteouts only
  // delete what earlier layers left.
  std::unordered_set<std::string> written_;
  std::string cached_path_;
  Fd cached_dir_;
  bool cache_valid_ = false;
};

absl::StatusOr<Fd> Extractor::WalkDirs(const std::vector<std::string>& components, size_t count,
                                       bool create, const std::string& what) {
  Fd current(::dup(root_.get()));
  if (current.get() < 0) return ErrnoToStatus(errno, StrCat(what, ": duplicating the root"));
  for (size_t i = 0; i < count; ++i) {
    const char* name = components[i].c_str();
    int next = ::openat(current.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      if (::mkdirat(current.get(), name, 0755) != 0 && errno != EEXIST) {
        return ErrnoToStatus(
            errno, StrCat(what, ": creating directory \"", JoinPath(components, i + 1), "\""));
      }
      next = ::openat(current.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next >= 0 && ::fchmod(next, 0755) != 0) {
        int saved_errno = errno;
        ::close(next);
        return ErrnoToStatus(saved_errno, StrCat(what, ": setting the mode of \"",
                                                 JoinPath(components, i + 1), "\""));
      }
    }
    if (next < 0) {
      const int saved_errno = errno;
      const std::string prefix = JoinPath(components, i + 1);
      struct stat st;
      if ((saved_errno == ELOOP || saved_errno == ENOTDIR) &&
          ::fstatat(current.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) {
          return absl::FailedPreconditionError(
              StrCat(what, ": would be written through the symlink \"", prefix, "\""));
        }
        return absl::FailedPreconditionError(StrCat(what, ": \"", prefix, "\" is not a directory"));
      }
      if (saved_errno == ENOENT) {
        return absl::NotFoundError(StrCat(what, ": \"", prefix, "\" does not exist"));
      }
      return ErrnoToStatus(saved_errno, StrCat(what, ": opening \"", prefix, "\""));
    }
    current = Fd(next);
  }
  return current;
}

absl::StatusOr<int> Extractor::ParentDir(const std::vector<std::string>& components, bool create,
                                         const std::string& what) {
  const size_t count = components.size() - 1;
  if (count == 0) return root_.get();
  std::string path = JoinPath(components, count);
  if (cache_valid_ && path == cached_path_) return cached_dir_.get();
  cache_valid_ = false;
  VMLET_ASSIGN_OR_RETURN(cached_dir_, WalkDirs(components, count, create, what));
  cached_path_ = std::move(path);
  cache_valid_ = true;
  return cached_dir_.get();
}

absl::Status Extractor::RemoveAt(int dir_fd, const std::string& name, const std::string& what) {
  // The remembered directory may be under what goes; it is dropped at the
  // next lookup (its descriptor stays open until then).
  cache_valid_ = false;
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(errno, StrCat(what, ": checking \"", name, "\""));
  }
  if (S_ISDIR(st.st_mode)) {
    int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, StrCat(what, ": opening \"", name, "\""));
    Fd dir(fd);
    VMLET_ASSIGN_OR_RETURN(std::vector<std::string> children, ListAt(dir.get(), what));
    for (const std::string& child : children) {
      VMLET_RETURN_IF_ERROR(RemoveAt(dir.get(), child, what));
    }
  }
  if (::unlinkat(dir_fd, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0) {
    return ErrnoToStatus(errno, StrCat(what, ": removing \"", name, "\""));
  }
  return absl::OkStatus();
}

absl::Status Extractor::ClearOpaque(int dir_fd, const std::string& relative,
                                    const std::string& what) {
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> children, ListAt(dir_fd, what));
  for (const std::string& child : children) {
    const std::string child_path = relative.empty() ? child : StrCat(relative, "/", child);
    if (!written_.contains(child_path)) {
      VMLET_RETURN_IF_ERROR(RemoveAt(dir_fd, child, what));
      continue;
    }
    // Written by this layer: a directory keeps only this layer's entries.
    int fd = ::openat(dir_fd, child.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;  // Not a directory.
    Fd dir(fd);
    VMLET_RETURN_IF_ERROR(ClearOpaque(dir.get(), child_path, what));
  }
  return absl::OkStatus();
}

absl::Status Extractor::ApplyWhiteout(const std::vector<std::string>& components,
                                      const std::string& what) {
  const std::string& name = components.back();
  const std::string parent_path = JoinPath(components, components.size() - 1);
  absl::StatusOr<int> parent = ParentDir(components, /*create=*/false, what);
  // No directory, nothing to hide.
  if (parent.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
  if (!parent.ok()) return parent.status();
  if (name == kOpaqueWhiteout) return ClearOpaque(*parent, parent_path, what);
  if (name.starts_with(".wh..wh.")) return absl::OkStatus();  // Other AUFS metadata.
  const std::string target = name.substr(kWhiteoutPrefix.size());
  if (target.empty() || target == "." || target == "..") {
    return absl::InvalidArgumentError(StrCat(what, ": whiteout of \"", target, "\""));
  }
  const std::string target_path = parent_path.empty() ? target : StrCat(parent_path, "/", target);
  // Entries of the same layer are only hidden by later layers.
  if (written_.contains(target_path)) return absl::OkStatus();
  return RemoveAt(*parent, target, what);
}

absl::Status Extractor::MakeDirectory(int parent, const std::string& name,
                                      const struct stat* existing, const std::string& what) {
  if (existing != nullptr && !S_ISDIR(existing->st_mode)) {
    VMLET_RETURN_IF_ERROR(RemoveAt(parent, name, what));
    existing = nullptr;
  }
  if (existing == nullptr && ::mkdirat(parent, name.c_str(), 0755) != 0) {
    return ErrnoToStatus(errno, StrCat(what, ": creating the directory"));
  }
  int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat(what, ": opening the directory"));
  Fd dir(fd);
  if (::fchmod(dir.get(), 0755) != 0) {
    return ErrnoToStatus(errno, StrCat(what, ": setting the directory's mode"));
  }
  return absl::OkStatus();
}

absl::Status Extractor::WriteRegular(struct archive_entry* entry, int parent,
                                     const std::string& name, const std::string& what) {
  int fd =
      ::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, StrCat(what, ": creating the file"));
  Fd file(fd);
  uint64_t end = 0;
  for (;;) {
    const void* data;
    size_t size;
    la_int64_t offset;
    int rc = archive_read_data_block(archive_, &data, &size, &offset);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      return absl::InvalidArgumentError(
          StrCat(what, ": reading its data: ", archive_error_string(archive_)));
    }
    if (IsCancelled(cancelled_)) return Cancelled();
    if (offset < 0) return absl::InvalidArgumentError(StrCat(what, ": negative data offset"));
    VMLET_RETURN_IF_ERROR(WriteSkippingZeros(file.get(), static_cast<const char*>(data), size,
                                             static_cast<uint64_t>(offset), what));
    end = std::max(end, static_cast<uint64_t>(offset) + size);
  }
  // The size covers trailing holes, which no block carried.
  uint64_t size = end;
  if (archive_entry_size_is_set(entry) && archive_entry_size(entry) > 0) {
    size = std::max(size, static_cast<uint64_t>(archive_entry_size(entry)));
  }
  if (::ftruncate(file.get(), static_cast<off_t>(size)) != 0) {
    return ErrnoToStatus(errno, StrCat(what, ": setting the file's size"));
  }
  // Permission bits and sticky bit; never setuid or setgid.
  if (::fchmod(file.get(), archive_entry_perm(entry) & 01777) != 0) {
    return ErrnoToStatus(errno, StrCat(what, ": setting the file's mode"));
  }
  if (::close(file.Release()) != 0) {
    return ErrnoToStatus(errno, StrCat(what, ": closing the file"));
  }
  ++stats_.files;
  stats_.bytes += size;
  return absl::OkStatus();
}

absl::Status Extractor::MakeHardLink(std::string_view target, int parent, const std::string& name,
                                     const std::string& what) {
  const std::string target_what = StrCat(what, ": hard link target \"", target, "\"");
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> components,
                         SplitArchivePath(target, target_what));
  if (components.empty()) {
    return absl::InvalidArgumentError(StrCat(target_what, " is the image root"));
  }
  absl::StatusOr<Fd> target_dir =
      WalkDirs(components, components.size() - 1, /*create=*/false, target_what);
  if (target_dir.status().code() == absl::StatusCode::kNotFound) {
    return absl::FailedPreconditionError(StrCat(target_what, " does not exist"));
  }
  if (!target_dir.ok()) return target_dir.status();
  struct stat st;
  if (::fstatat(target_dir->get(), components.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return absl::FailedPreconditionError(StrCat(target_what, " does not exist"));
    }
    return ErrnoToStatus(errno, target_what);
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(StrCat(target_what, " is a directory"));
  }
  struct stat existing;
  if (::fstatat(parent, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) {
    if (existing.st_dev == st.st_dev && existing.st_ino == st.st_ino) return absl::OkStatus();
    VMLET_RETURN_IF_ERROR(RemoveAt(parent, name, what));
  }
  if (::linkat(target_dir->get(), components.back().c_str(), parent, name.c_str(), 0) != 0) {
    return ErrnoToStatus(errno, StrCat(what, ": linking to \"", target, "\""));
  }
  ++stats_.files;
  return absl::OkStatus();
}

absl::Status Extractor::Apply(struct archive_entry* entry) {
  const char* raw_path = PathOf(archive_entry_pathname(entry), archive_entry_pathname_utf8(entry));
  if (raw_path == nullptr) return absl::InvalidArgumentError("layer entry without a path");
  const std::string what = StrCat("layer entry \"", raw_path, "\"");
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> components, SplitArchivePath(raw_path, what));
  if (components.empty()) return absl::OkStatus();  // The root itself.
  std::string relative;
  for (size_t i = 0; i + 1 < components.size(); ++i) {
    if (i > 0) relative.push_back('/');
    relative.append(components[i]);
    written_.insert(relative);
  }
  const std::string& name = components.back();
  if (name.starts_with(kWhiteoutPrefix)) return ApplyWhiteout(components, what);
  written_.insert(relative.empty() ? name : StrCat(relative, "/", name));

  const char* hardlink = PathOf(archive_entry_hardlink(entry), archive_entry_hardlink_utf8(entry));
  const mode_t type = archive_entry_filetype(entry);
  if (hardlink == nullptr &&
      (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK)) {
    ++stats_.skipped;
    return absl::OkStatus();
  }
  const char* symlink = nullptr;
  if (hardlink == nullptr && type == AE_IFLNK) {
    symlink = PathOf(archive_entry_symlink(entry), archive_entry_symlink_utf8(entry));
    if (symlink == nullptr) symlink = "";
    VMLET_RETURN_IF_ERROR(CheckSymlinkTarget(symlink, components.size() - 1, what));
  } else if (hardlink == nullptr && type != AE_IFDIR && type != AE_IFREG) {
    return absl::InvalidArgumentError(
        StrCat(what, ": unsupported entry type ", static_cast<unsigned>(type)));
  }

  VMLET_ASSIGN_OR_RETURN(int parent, ParentDir(components, /*create=*/true, what));
  struct stat existing;
  bool exists = ::fstatat(parent, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
  if (!exists && errno != ENOENT) return ErrnoToStatus(errno, StrCat(what, ": checking"));
  if (hardlink != nullptr) return MakeHardLink(hardlink, parent, name, what);
  if (type == AE_IFDIR) return MakeDirectory(parent, name, exists ? &existing : nullptr, what);
  // Whatever was there goes: never written through, even a symlink.
  if (exists) VMLET_RETURN_IF_ERROR(RemoveAt(parent, name, what));
  if (type == AE_IFREG) return WriteRegular(entry, parent, name, what);
  if (::symlinkat(symlink, parent, name.c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat(what, ": creating the symlink"));
  }
  ++stats_.files;
  return absl::OkStatus();
}

// The status of a failed libarchive call: the source's own error, or
// cancellation, first.
absl::Status ArchiveError(struct archive* archive, const Source& source,
                          const std::atomic<bool>* cancelled, std::string_view doing) {
  if (IsCancelled(cancelled)) return Cancelled();
  if (!source.status.ok()) return source.status;
  const char* message = archive_error_string(archive);
  return absl::InvalidArgumentError(
      StrCat(doing, ": ", message != nullptr ? message : "unknown libarchive error"));
}

}  // namespace

absl::StatusOr<ExtractStats> ExtractLayer(int fd, const std::string& root,
                                          const std::atomic<bool>* cancelled) {
  if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("creating the layer root \"", root, "\""));
  }
  int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return ErrnoToStatus(errno, StrCat("opening the layer root \"", root, "\""));
  Fd root_dir(root_fd);

  struct archive* archive = archive_read_new();
  if (archive == nullptr) return absl::ResourceExhaustedError("allocating a libarchive reader");
  ScopeGuard free_archive([archive] { archive_read_free(archive); });
  // The OCI compressions only, in-process: archive_read_support_filter_all
  // would also run external programs (lrzip, lzop, grzip) on untrusted
  // data. ARCHIVE_WARN means "through an external program" here.
  if (archive_read_support_filter_gzip(archive) != ARCHIVE_OK ||
      archive_read_support_filter_zstd(archive) != ARCHIVE_OK) {
    return absl::InternalError(
        StrCat("libarchive lacks built-in gzip or zstd support: ", archive_error_string(archive)));
  }
  // ustar, pax (with its sparse files) and GNU tar; an empty stream is an
  // empty layer.
  archive_read_support_format_tar(archive);
  archive_read_support_format_empty(archive);

  Source source{.fd = fd, .cancelled = cancelled};
  if (archive_read_open(archive, &source, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    return ArchiveError(archive, source, cancelled, "reading the layer");
  }
  Extractor extractor(std::move(root_dir), archive, cancelled);
  for (;;) {
    if (IsCancelled(cancelled)) return Cancelled();
    struct archive_entry* entry;
    int rc = archive_read_next_header(archive, &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc == ARCHIVE_RETRY) continue;
    if (rc < ARCHIVE_WARN) return ArchiveError(archive, source, cancelled, "reading the layer");
    absl::Status applied = extractor.Apply(entry);
    if (!applied.ok()) {
      // A failed data read may be the source's doing.
      if (IsCancelled(cancelled)) return Cancelled();
      if (!source.status.ok()) return source.status;
      return applied;
    }
  }
  // Drain what follows the end-of-archive marker so that the writer of the
  // pipe finishes.
  while (!source.at_end) {
    if (source.Read() < 0) return source.status;
  }
  return extractor.stats();
}

}  // namespace vmlet::image

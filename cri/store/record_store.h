// A thread-safe store of persisted records of one kind (sandboxes or
// containers), keyed by their 64-hex-character id.
//
// The store owns its lock. Callers get copies; they change a record only
// through Update, whose function runs under the lock on a copy that replaces
// the stored record once it has been written to disk. Every change is on
// disk before it is visible, so a crash never loses an acknowledged change.
#ifndef VMLET_CRI_STORE_RECORD_STORE_H_
#define VMLET_CRI_STORE_RECORD_STORE_H_

#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/store/record_file.h"

namespace vmlet::cri::store {

template <typename Record>
class RecordStore {
 public:
  // `kind` names the records in messages ("sandbox", "container"); `dir`
  // holds one file per record.
  RecordStore(std::string kind, std::string dir) : kind_(std::move(kind)), dir_(std::move(dir)) {}

  RecordStore(const RecordStore&) = delete;
  RecordStore& operator=(const RecordStore&) = delete;

  const std::string& kind() const { return kind_; }

  // Called after every successful Add (before = null), Update and Delete
  // (after = null), under the store's lock, so in the order of the changes.
  // It must be quick and must not call the store. Set before the store is
  // shared between threads; Load does not call it.
  using Observer = std::function<void(const Record* before, const Record* after)>;
  void SetObserver(Observer observer) { observer_ = std::move(observer); }

  // Loads every record in the directory. A file that cannot be read is
  // renamed to "<file>.corrupt" and reported in the returned list of
  // warnings; it never stops the load.
  absl::StatusOr<std::vector<std::string>> Load() {
    VMLET_ASSIGN_OR_RETURN(std::vector<std::string> paths, ListRecordFiles(dir_));
    std::vector<std::string> warnings;
    std::map<std::string, Record, std::less<>> loaded;
    for (const std::string& path : paths) {
      Record record;
      absl::Status status = ReadRecordFile(path, record);
      if (status.ok() && record.id().empty()) {
        status = absl::DataLossError(StrCat("record \"", path, "\" has no id"));
      }
      if (status.ok() && PathOf(record.id()) != path) {
        status =
            absl::DataLossError(StrCat("record \"", path, "\" holds id \"", record.id(), "\""));
      }
      if (!status.ok()) {
        absl::Status moved = MoveAside(path);
        warnings.push_back(StrCat(status.message(), moved.ok() ? "; moved aside" : "; ",
                                  moved.ok() ? "" : moved.message()));
        continue;
      }
      std::string id = record.id();
      loaded.emplace(std::move(id), std::move(record));
    }
    std::lock_guard lock(mu_);
    records_ = std::move(loaded);
    return warnings;
  }

  // Persists and inserts a new record. ALREADY_EXISTS if the id is taken.
  absl::Status Add(const Record& record) {
    std::lock_guard lock(mu_);
    if (records_.contains(record.id())) {
      return absl::AlreadyExistsError(StrCat(kind_, " \"", record.id(), "\" already exists"));
    }
    VMLET_RETURN_IF_ERROR(WriteRecordFile(PathOf(record.id()), record));
    records_.emplace(record.id(), record);
    if (observer_) observer_(nullptr, &record);
    return absl::OkStatus();
  }

  // Finds a record by its full id or by a prefix that only it has.
  // NOT_FOUND if none matches, INVALID_ARGUMENT if the id is empty or the
  // prefix is ambiguous.
  absl::StatusOr<Record> Get(std::string_view id_or_prefix) const {
    std::lock_guard lock(mu_);
    VMLET_ASSIGN_OR_RETURN(auto it, FindLocked(id_or_prefix));
    return it->second;
  }

  // Runs `mutate` on a copy of the record under the store's lock; if it
  // returns OK, the copy is persisted and replaces the record. Returns the
  // new record. The id must be a full id.
  absl::StatusOr<Record> Update(std::string_view id,
                                const std::function<absl::Status(Record&)>& mutate) {
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end()) return NotFound(id);
    Record updated = it->second;
    VMLET_RETURN_IF_ERROR(mutate(updated));
    if (updated.id() != it->first) {
      return absl::InternalError(StrCat("updating ", kind_, " \"", id, "\" changed its id"));
    }
    VMLET_RETURN_IF_ERROR(WriteRecordFile(PathOf(it->first), updated));
    if (observer_) observer_(&it->second, &updated);
    it->second = updated;
    return updated;
  }

  // Deletes the record's file and entry. A missing record is not an error.
  absl::Status Delete(std::string_view id) {
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end()) return absl::OkStatus();
    std::string path = PathOf(it->first);
    if (std::remove(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, StrCat("removing ", kind_, " record \"", path, "\""));
    }
    if (observer_) observer_(&it->second, nullptr);
    records_.erase(it);
    return absl::OkStatus();
  }

  // Copies of the records for which `keep` is true (all when it is empty).
  std::vector<Record> List(const std::function<bool(const Record&)>& keep = nullptr) const {
    std::lock_guard lock(mu_);
    std::vector<Record> out;
    out.reserve(records_.size());
    for (const auto& [id, record] : records_) {
      if (!keep || keep(record)) out.push_back(record);
    }
    return out;
  }

  size_t Size() const {
    std::lock_guard lock(mu_);
    return records_.size();
  }

 private:
  using Map = std::map<std::string, Record, std::less<>>;

  std::string PathOf(std::string_view id) const { return StrCat(dir_, "/", id, ".json"); }

  absl::Status NotFound(std::string_view id) const {
    return absl::NotFoundError(StrCat(kind_, " \"", id, "\" not found"));
  }

  absl::StatusOr<typename Map::const_iterator> FindLocked(std::string_view prefix) const {
    if (prefix.empty()) {
      return absl::InvalidArgumentError(StrCat(kind_, " id is empty"));
    }
    auto it = records_.lower_bound(prefix);
    if (it == records_.end() || !it->first.starts_with(prefix)) return NotFound(prefix);
    if (it->first.size() == prefix.size()) return it;  // Exact match.
    auto next = std::next(it);
    if (next != records_.end() && next->first.starts_with(prefix)) {
      return absl::InvalidArgumentError(
          StrCat(kind_, " id prefix \"", prefix, "\" is ambiguous: it matches \"", it->first,
                 "\" and \"", next->first, "\" (give more characters)"));
    }
    return it;
  }

  const std::string kind_;
  const std::string dir_;
  mutable std::mutex mu_;
  Map records_;
  Observer observer_;
};

}  // namespace vmlet::cri::store

#endif  // VMLET_CRI_STORE_RECORD_STORE_H_

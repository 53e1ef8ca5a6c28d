// The node's VM specs: validated, versioned and persisted, one protobuf JSON
// file (proto field names) per spec at <dir>/<namespace>/<name>.json,
// written atomically. Loaded at start; a file that does not parse is logged
// and renamed to <name>.json.corrupt, never taking other specs with it.
//
// Each spec has a source: "api" (the VmSpecs service) or the file of
// vmspec_dir it was read from (spec_dir.h). A spec from a file can only be
// changed or deleted through that file; an API Apply or Delete of it fails
// with FAILED_PRECONDITION naming the file.
//
// Generations: 1 when a spec is created, +1 on each Apply that changes its
// machine or labels; applying the same spec again keeps the generation and
// the timestamps.
//
// Threading: every method may be called from any thread; the store has its
// own mutex and hands out copies.
#ifndef VMLET_VMSPEC_SPEC_STORE_H_
#define VMLET_VMSPEC_SPEC_STORE_H_

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmlet/vmspec/v1/vmspec.pb.h"

namespace vmlet::vmspec {

namespace v1 = ::vmlet::vmspec::v1;

// The source of specs stored through the VmSpecs service.
inline constexpr std::string_view kApiSource = "api";

struct SpecStoreOptions {
  // Where the spec files live (<state_dir>/vmspecs); created if missing.
  std::string dir;
  // At most this many specs (RESOURCE_EXHAUSTED beyond).
  size_t max_specs = 10000;
  // At most this many bytes of specs (serialized) together; one spec has at
  // most kMaxVmSpecBytes (validate.h).
  size_t max_total_bytes = size_t{256} << 20;
};

class SpecStore {
 public:
  // Creates the directory if needed and loads every spec in it.
  static absl::StatusOr<std::unique_ptr<SpecStore>> Open(SpecStoreOptions options);

  // Validates `spec` (validate.h) and stores it under its metadata's
  // namespace and name, with the generation, timestamps and `source` set
  // by the store (what the caller put there is ignored; labels are kept).
  // Returns the stored spec. FAILED_PRECONDITION when the spec exists with
  // another source that is a file (a file may take over a spec from the
  // API, never from another file).
  absl::StatusOr<v1::VmSpec> Apply(const v1::VmSpec& spec, std::string_view source = kApiSource);

  // NOT_FOUND for a spec that does not exist; INVALID_ARGUMENT for a
  // namespace or name that cannot name one.
  absl::StatusOr<v1::VmSpec> Get(std::string_view ns, std::string_view name) const;

  // Specs of `ns` (every namespace when empty), sorted by namespace, then
  // name.
  std::vector<v1::VmSpec> List(std::string_view ns = "") const;

  // Deletes a spec; a missing one is OK. FAILED_PRECONDITION when the spec
  // has another source that is a file.
  absl::Status Delete(std::string_view ns, std::string_view name,
                      std::string_view source = kApiSource);

  // (namespace, name) of every spec whose source is not "api", by source.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> FileSourcedKeys() const;

  size_t size() const;

 private:
  using Key = std::pair<std::string, std::string>;  // (namespace, name)
  struct Entry {
    v1::VmSpec spec;
    size_t bytes = 0;
  };

  explicit SpecStore(SpecStoreOptions options) : options_(std::move(options)) {}

  absl::Status Load();
  // Loads one file; a file that does not parse is moved aside.
  void LoadFile(const std::string& ns, const std::string& file);
  std::string PathOf(const Key& key) const;
  // Checks that `source` may replace or delete `existing`. Caller holds mu_.
  static absl::Status CheckSource(const v1::VmSpec& existing, std::string_view source,
                                  std::string_view verb);

  const SpecStoreOptions options_;
  mutable std::mutex mu_;
  std::map<Key, Entry> specs_;  // Guarded by mu_.
  size_t total_bytes_ = 0;      // Guarded by mu_.
};

}  // namespace vmlet::vmspec

#endif  // VMLET_VMSPEC_SPEC_STORE_H_

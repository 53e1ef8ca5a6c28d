#include "vmspec/spec_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "vmspec/validate.h"

namespace vmlet::vmspec {
namespace {

constexpr Logger kLog("vmspec");

constexpr std::string_view kJsonSuffix = ".json";

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string SpecJson(const v1::VmSpec& spec) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(spec, &json, options);
  return json;
}

std::map<std::string, std::string> Labels(const v1::VmSpec& spec) {
  return {spec.metadata().labels().begin(), spec.metadata().labels().end()};
}

// Whether `a` and `b` differ in what a generation counts: the machine and
// the labels.
bool SameContent(const v1::VmSpec& a, const v1::VmSpec& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a.spec(), b.spec()) &&
         Labels(a) == Labels(b);
}

std::string KeyName(std::string_view ns, std::string_view name) { return StrCat(ns, "/", name); }

}  // namespace

absl::StatusOr<std::unique_ptr<SpecStore>> SpecStore::Open(SpecStoreOptions options) {
  std::unique_ptr<SpecStore> store(new SpecStore(std::move(options)));
  VMLET_RETURN_IF_ERROR(
      Annotate(MakeDirs(store->options_.dir, 0700),
               StrCat("creating the VM spec directory \"", store->options_.dir, "\"")));
  VMLET_RETURN_IF_ERROR(store->Load());
  return store;
}

absl::Status SpecStore::Load() {
  std::lock_guard lock(mu_);
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> namespaces, ListDirectory(options_.dir));
  for (const std::string& ns : namespaces) {
    const std::string ns_dir = StrCat(options_.dir, "/", ns);
    if (!IsDirectory(ns_dir)) continue;
    absl::StatusOr<std::vector<std::string>> files = ListDirectory(ns_dir);
    if (!files.ok()) {
      kLog.Error("skipping the VM specs of namespace \"{}\": {}", ns, files.status().message());
      continue;
    }
    for (const std::string& file : *files) {
      if (file.find(".json.tmp-") != std::string::npos) {
        // Left by a write that a crash interrupted.
        (void)RemoveFileIfExists(StrCat(ns_dir, "/", file));
        continue;
      }
      if (!file.ends_with(kJsonSuffix)) continue;
      LoadFile(ns, file);
    }
  }
  kLog.Info("loaded {} VM specs from {}", specs_.size(), options_.dir);
  return absl::OkStatus();
}

void SpecStore::LoadFile(const std::string& ns, const std::string& file) {
  const std::string path = StrCat(options_.dir, "/", ns, "/", file);
  const std::string name = file.substr(0, file.size() - kJsonSuffix.size());
  absl::Status status;
  v1::VmSpec spec;
  absl::StatusOr<std::string> json = ReadFile(path);
  if (!json.ok()) {
    // Unreadable now is not corrupt: leave the file for the next start.
    kLog.Error("skipping VM spec file {}: {}", path, json.status().message());
    return;
  }
  google::protobuf::util::JsonParseOptions parse_options;
  parse_options.ignore_unknown_fields = false;
  if (auto parsed = google::protobuf::util::JsonStringToMessage(*json, &spec, parse_options);
      !parsed.ok()) {
    status = absl::DataLossError(StrCat("not a VM spec in JSON: ", parsed.ToString()));
  } else if (spec.metadata().namespace_() != ns || spec.metadata().name() != name) {
    status = absl::DataLossError(StrCat(
        "the file holds VM spec \"", KeyName(spec.metadata().namespace_(), spec.metadata().name()),
        "\": expected \"", KeyName(ns, name), "\" as its path says"));
  } else if (absl::Status key = ValidateObjectKey(ns, name); !key.ok()) {
    status = absl::DataLossError(key.message());
  }
  if (!status.ok()) {
    const std::string aside = path + ".corrupt";
    kLog.Error("VM spec file {} is corrupt ({}); moving it to {}", path, status.message(), aside);
    if (::rename(path.c_str(), aside.c_str()) != 0) {
      kLog.Error("moving {} aside: {}", path, ErrnoToStatus(errno, "rename").message());
    }
    return;
  }
  if (absl::Status valid = ValidateVmSpec(spec); !valid.ok()) {
    // Stored by an older vmletd with looser rules: kept, since pods may use it.
    kLog.Warning("VM spec {} no longer validates (re-apply it): {}", KeyName(ns, name),
                 valid.message());
  }
  const size_t bytes = spec.ByteSizeLong();
  total_bytes_ += bytes;
  specs_[{ns, name}] = Entry{.spec = std::move(spec), .bytes = bytes};
}

std::string SpecStore::PathOf(const Key& key) const {
  return StrCat(options_.dir, "/", key.first, "/", key.second, kJsonSuffix);
}

absl::Status SpecStore::CheckSource(const v1::VmSpec& existing, std::string_view source,
                                    std::string_view verb) {
  const std::string& owner = existing.metadata().source();
  if (owner == source || owner == kApiSource || owner.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      StrCat("VM spec \"", KeyName(existing.metadata().namespace_(), existing.metadata().name()),
             "\" comes from file \"", owner, "\" of vmspec_dir: ", verb,
             " it by editing or removing that file"));
}

absl::StatusOr<v1::VmSpec> SpecStore::Apply(const v1::VmSpec& spec, std::string_view source) {
  v1::VmSpec next = spec;
  v1::ObjectMeta* meta = next.mutable_metadata();
  meta->clear_generation();
  meta->clear_created_at();
  meta->clear_updated_at();
  meta->clear_source();
  VMLET_RETURN_IF_ERROR(ValidateObjectKey(meta->namespace_(), meta->name()));
  VMLET_RETURN_IF_ERROR(ValidateVmSpec(next));
  meta->set_source(std::string(source));
  const Key key{meta->namespace_(), meta->name()};

  std::lock_guard lock(mu_);
  auto it = specs_.find(key);
  const int64_t now = absl::ToUnixNanos(absl::Now());
  if (it == specs_.end()) {
    if (specs_.size() >= options_.max_specs) {
      return absl::ResourceExhaustedError(
          StrCat("cannot store VM spec \"", KeyName(key.first, key.second), "\": the node holds ",
                 specs_.size(), " VM specs, the most it keeps; delete some first"));
    }
    meta->set_generation(1);
    meta->set_created_at(now);
    meta->set_updated_at(now);
  } else {
    const v1::VmSpec& old = it->second.spec;
    VMLET_RETURN_IF_ERROR(CheckSource(old, source, "change"));
    if (SameContent(old, next) && old.metadata().source() == source) return old;
    const bool changed = !SameContent(old, next);
    meta->set_generation(old.metadata().generation() + (changed ? 1 : 0));
    meta->set_created_at(old.metadata().created_at());
    meta->set_updated_at(changed ? now : old.metadata().updated_at());
  }
  const size_t bytes = next.ByteSizeLong();
  const size_t old_bytes = it == specs_.end() ? 0 : it->second.bytes;
  if (total_bytes_ - old_bytes + bytes > options_.max_total_bytes) {
    return absl::ResourceExhaustedError(
        StrCat("cannot store VM spec \"", KeyName(key.first, key.second),
               "\": the node's VM specs would exceed ", options_.max_total_bytes,
               " bytes; delete some first"));
  }
  VMLET_RETURN_IF_ERROR(MakeDirs(StrCat(options_.dir, "/", key.first), 0700));
  VMLET_RETURN_IF_ERROR(
      Annotate(WriteFileAtomically(PathOf(key), SpecJson(next)),
               StrCat("storing VM spec \"", KeyName(key.first, key.second), "\"")));
  total_bytes_ = total_bytes_ - old_bytes + bytes;
  specs_[key] = Entry{.spec = next, .bytes = bytes};
  return next;
}

absl::StatusOr<v1::VmSpec> SpecStore::Get(std::string_view ns, std::string_view name) const {
  VMLET_RETURN_IF_ERROR(ValidateObjectKey(ns, name));
  std::lock_guard lock(mu_);
  auto it = specs_.find(Key(ns, name));
  if (it == specs_.end()) {
    return absl::NotFoundError(StrCat("VM spec \"", KeyName(ns, name), "\" does not exist"));
  }
  return it->second.spec;
}

std::vector<v1::VmSpec> SpecStore::List(std::string_view ns) const {
  std::vector<v1::VmSpec> out;
  std::lock_guard lock(mu_);
  // specs_ is ordered by (namespace, name), as List promises.
  for (const auto& [key, entry] : specs_) {
    if (ns.empty() || key.first == ns) out.push_back(entry.spec);
  }
  return out;
}

absl::Status SpecStore::Delete(std::string_view ns, std::string_view name,
                               std::string_view source) {
  VMLET_RETURN_IF_ERROR(ValidateObjectKey(ns, name));
  std::lock_guard lock(mu_);
  auto it = specs_.find(Key(ns, name));
  if (it == specs_.end()) return absl::OkStatus();
  VMLET_RETURN_IF_ERROR(CheckSource(it->second.spec, source, "delete"));
  VMLET_RETURN_IF_ERROR(Annotate(RemoveFileIfExists(PathOf(it->first)),
                                 StrCat("deleting VM spec \"", KeyName(ns, name), "\"")));
  // The namespace's directory goes with its last spec (fails while others
  // remain, which is fine).
  (void)::rmdir(StrCat(options_.dir, "/", ns).c_str());
  total_bytes_ -= it->second.bytes;
  specs_.erase(it);
  return absl::OkStatus();
}

std::map<std::string, std::vector<std::pair<std::string, std::string>>> SpecStore::FileSourcedKeys()
    const {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> out;
  std::lock_guard lock(mu_);
  for (const auto& [key, entry] : specs_) {
    const std::string& source = entry.spec.metadata().source();
    if (source != kApiSource && !source.empty()) out[source].push_back(key);
  }
  return out;
}

size_t SpecStore::size() const {
  std::lock_guard lock(mu_);
  return specs_.size();
}

}  // namespace vmlet::vmspec

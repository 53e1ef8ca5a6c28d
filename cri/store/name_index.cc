#include "cri/store/name_index.h"

#include "base/str_util.h"

namespace vmlet::cri::store {

absl::Status NameIndex::Reserve(std::string_view name, std::string_view id) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = names_.try_emplace(std::string(name), id);
  if (inserted || it->second == id) return absl::OkStatus();
  return absl::AlreadyExistsError(
      StrCat("name \"", name, "\" is reserved for \"", it->second, "\""));
}

void NameIndex::Release(std::string_view name, std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = names_.find(name);
  if (it != names_.end() && it->second == id) names_.erase(it);
}

std::optional<std::string> NameIndex::Holder(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = names_.find(name);
  if (it == names_.end()) return std::nullopt;
  return it->second;
}

}  // namespace vmlet::cri::store

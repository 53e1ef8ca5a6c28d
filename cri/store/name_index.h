// Reserves names for ids. The kubelet names each sandbox and container by
// its metadata; one name may belong to one id at a time, which is how a
// retried request is recognised and how duplicates are refused.
#ifndef VMLET_CRI_STORE_NAME_INDEX_H_
#define VMLET_CRI_STORE_NAME_INDEX_H_

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace vmlet::cri::store {

class NameIndex {
 public:
  // Reserves `name` for `id`. Reserving a name again for the same id is OK.
  // ALREADY_EXISTS naming the holder if another id holds it.
  absl::Status Reserve(std::string_view name, std::string_view id);

  // Releases `name` if `id` holds it; anything else is a no-op.
  void Release(std::string_view name, std::string_view id);

  // The id that holds `name`, if any.
  std::optional<std::string> Holder(std::string_view name) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> names_;
};

}  // namespace vmlet::cri::store

#endif  // VMLET_CRI_STORE_NAME_INDEX_H_

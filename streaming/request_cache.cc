#include "streaming/request_cache.h"

#include <utility>

#include "absl/status/status.h"
#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::streaming {

absl::StatusOr<std::string> RequestCache::Insert(Request request) {
  absl::Time now = clock_();
  std::lock_guard lock(mu_);
  DropExpiredLocked(now);
  if (entries_.size() >= kMaxPendingRequests) {
    return absl::ResourceExhaustedError(
        StrCat("too many streaming requests are waiting for their client (", kMaxPendingRequests,
               "); try again when some have connected or expired (after ",
               absl::FormatDuration(kTokenLifetime), ")"));
  }
  std::string token = GenerateId().substr(0, 32);
  entries_.emplace(token, Entry{.request = std::move(request), .expires = now + kTokenLifetime});
  return token;
}

absl::StatusOr<Request> RequestCache::Consume(const std::string& token) {
  absl::Time now = clock_();
  std::lock_guard lock(mu_);
  DropExpiredLocked(now);
  auto it = entries_.find(token);
  if (it == entries_.end()) {
    return absl::NotFoundError(StrCat(
        "unknown, used or expired streaming token; tokens are good ", "for one connection within ",
        absl::FormatDuration(kTokenLifetime), " of the call that returned them"));
  }
  Request request = std::move(it->second.request);
  entries_.erase(it);
  return request;
}

void RequestCache::DropExpiredLocked(absl::Time now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.expires <= now ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace vmlet::streaming

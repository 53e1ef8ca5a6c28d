// The requests behind the URLs that Exec, Attach and PortForward return.
// The CRI call validates and stores a request under a random token; the
// client then connects to <base_url>/<kind>/<token>. A token is good for one
// connection and for kTokenLifetime, as the kubelet's own streaming server
// does it; the cache holds at most kMaxPendingRequests at once.
#ifndef VMLET_STREAMING_REQUEST_CACHE_H_
#define VMLET_STREAMING_REQUEST_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace vmlet::streaming {

inline constexpr absl::Duration kTokenLifetime = absl::Minutes(1);
inline constexpr size_t kMaxPendingRequests = 1000;

struct ExecRequest {
  std::string container_id;
  std::vector<std::string> cmd;
  bool tty = false, stdin = false, stdout = false, stderr = false;
};

struct AttachRequest {
  std::string container_id;
  bool tty = false, stdin = false, stdout = false, stderr = false;
};

struct PortForwardRequest {
  std::string sandbox_id;
  std::vector<int32_t> ports;  // The ports the caller named (may be empty).
};

using Request = std::variant<ExecRequest, AttachRequest, PortForwardRequest>;

// All methods: any thread.
class RequestCache {
 public:
  using Clock = std::function<absl::Time()>;
  explicit RequestCache(Clock clock = [] { return absl::Now(); }) : clock_(std::move(clock)) {}

  // Stores `request` and returns its token (32 lower-case hex characters,
  // 128 random bits). RESOURCE_EXHAUSTED when kMaxPendingRequests unexpired
  // requests wait already.
  absl::StatusOr<std::string> Insert(Request request);

  // Takes the request stored under `token` out of the cache. NOT_FOUND for
  // a token that is unknown, used already or expired (the message does not
  // say which: a token is a secret).
  absl::StatusOr<Request> Consume(const std::string& token);

 private:
  struct Entry {
    Request request;
    absl::Time expires;
  };
  void DropExpiredLocked(absl::Time now);

  const Clock clock_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_REQUEST_CACHE_H_

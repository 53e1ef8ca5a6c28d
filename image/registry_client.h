// A client for the OCI distribution API (registries such as Docker Hub,
// ghcr.io, the `docker-registry` package): resolves a reference to a
// linux/amd64 image manifest and fetches blobs, with Bearer/Basic auth,
// mirrors, retries with backoff and resumed, verified blob downloads.
#ifndef VMLET_IMAGE_REGISTRY_CLIENT_H_
#define VMLET_IMAGE_REGISTRY_CLIENT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "image/http_client.h"
#include "image/reference.h"

namespace vmlet::image {

inline constexpr std::string_view kOciManifestMediaType =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndexMediaType = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifestMediaType =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestListMediaType =
    "application/vnd.docker.distribution.manifest.list.v2+json";

// The largest manifest or index accepted.
inline constexpr size_t kMaxManifestSize = 4 << 20;

// Per registry host (from vmlet.yaml `registries:`).
struct RegistrySettings {
  bool plain_http = false;  // Config `insecure: true`: http:// instead of https://.
  TlsSettings tls;          // Also used for the mirrors and the token server.
  // "host[:port]" (the registry's scheme) or full URLs "http(s)://host[:port]",
  // tried in order before the registry itself. Credentials are never sent to
  // a mirror: it is pulled from anonymously.
  std::vector<std::string> mirrors;
};

// From CRI AuthConfig.
struct Credentials {
  std::string username, password;
  std::string auth;            // base64("user:pass"), as in AuthConfig.auth.
  std::string identity_token;  // OAuth2 refresh token.
  std::string registry_token;  // Bearer token to send as-is.

  bool empty() const {
    return username.empty() && password.empty() && auth.empty() && identity_token.empty() &&
           registry_token.empty();
  }
};

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
};

struct ResolvedManifest {
  // Digest of the manifest the tag/digest points at (an index's digest when
  // it was an index): what repo_digests shows.
  std::string digest;
  // Digest of the platform manifest actually used (== digest when not an index).
  std::string manifest_digest;
  std::string media_type;  // Of that platform manifest.
  std::string raw;         // Bytes of that platform manifest.
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct RegistryClientOptions {
  // Tries per request (the first try included) when the registry answers
  // 408/429/5xx or the connection fails. For a blob, a try that brought at
  // least 1 MiB of new bytes does not count.
  int attempts = 4;
  absl::Duration first_backoff = absl::Milliseconds(200);  // Doubles per retry, plus jitter.
  std::string platform_os = "linux", platform_arch = "amd64";
  absl::Duration low_speed_time = absl::Seconds(30);  // See HttpRequest.
  absl::Duration connect_timeout = absl::Seconds(30);
};

// One per pull. Not thread-safe: one thread at a time (it caches tokens).
//
// Errors: 401 after authenticating is UNAUTHENTICATED, 403 PERMISSION_DENIED,
// a missing manifest/repository/blob NOT_FOUND, content failing verification
// DATA_LOSS, unsupported manifests FAILED_PRECONDITION, and transient trouble
// that outlasted the retries UNAVAILABLE with the last cause.
class RegistryClient {
 public:
  RegistryClient(Reference ref, RegistrySettings settings, Credentials credentials,
                 RegistryClientOptions options = {});

  // Fetches the manifest the reference names (by digest when it has one),
  // picking the platform's manifest from an index / manifest list.
  absl::StatusOr<ResolvedManifest> ResolveManifest();

  // A small blob (config) fully in memory, size-capped, digest-verified.
  absl::StatusOr<std::string> FetchBlob(const Descriptor& blob, size_t max_size = 4 << 20);

  // Streams the blob's bytes in order to `sink`, each exactly once: after a
  // dropped connection it resumes with a Range request from the byte it
  // reached. Verifies size and sha256 at the end: DATA_LOSS naming the
  // expected and actual digest when they differ (the caller then discards
  // what it wrote). `progress` is called after each chunk.
  absl::Status StreamBlob(const Descriptor& blob, const BodySink& sink,
                          const ProgressFn& progress = nullptr);

 private:
  struct Endpoint {
    std::string base_url;  // "https://host[:port]" (maybe with a path), no trailing slash.
    bool is_mirror = false;
    bool dead = false;          // A connection to this mirror failed: skipped from now on.
    std::string authorization;  // "Authorization: ..." header to send; empty = none.
  };

  // Calls `try_once` until it succeeds, fails with another code than
  // UNAVAILABLE, sets *fatal, or `attempts` tries in a row failed; sleeps
  // with backoff in between. A try after which `progressed` returns true
  // starts the count again.
  absl::Status Retry(const std::function<absl::Status(bool* fatal)>& try_once,
                     const std::function<bool()>& progressed = nullptr);
  // One pass over the mirrors, then the registry: the first 2xx response
  // for `path` ("/v2/<repo>/..."). A mirror's failure falls through to the
  // next endpoint; the registry's is returned. *fatal is set when `sink`
  // failed. `range_start` (may be null) is read before each request.
  absl::StatusOr<HttpResponse> TryEndpoints(const std::string& path,
                                            const std::vector<std::string>& headers,
                                            const std::string& what, const BodySink& sink,
                                            size_t max_buffered, const int64_t* range_start,
                                            bool* fatal);
  // One request to one endpoint, answering one 401 challenge.
  absl::StatusOr<HttpResponse> FetchFrom(Endpoint& endpoint, const std::string& path,
                                         const std::vector<std::string>& headers,
                                         const BodySink& sink, size_t max_buffered,
                                         int64_t range_start);
  // The Authorization header a 401 response's challenge asks for.
  absl::StatusOr<std::string> Authorize(const Endpoint& endpoint, const HttpResponse& challenge);
  // The status for a final non-2xx response from `endpoint`.
  absl::Status ErrorFor(const Endpoint& endpoint, const HttpResponse& response,
                        const std::string& what) const;
  // A manifest by tag or digest, with retries; its digest checked against
  // `expected_digest` when given.
  absl::StatusOr<HttpResponse> FetchManifest(const std::string& tag_or_digest,
                                             const std::string& expected_digest);
  std::string BasicCredentials() const;  // base64("user:pass"), or "".
  // "the credentials" problem for a 401, worded by whether there were any.
  absl::Status Unauthenticated(const std::string& host) const;

  Reference ref_;
  RegistrySettings settings_;
  Credentials credentials_;
  RegistryClientOptions options_;
  std::vector<Endpoint> endpoints_;  // The mirrors, then the registry.
  absl::Duration retry_after_;       // What the last retryable response asked for.
};

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_REGISTRY_CLIENT_H_

// One HTTP(S) transfer over libcurl, and the retry policy shared by the
// registry client and the HTTP(S) image source.
//
// Thread-safety: every function here may be called from any thread; each
// call uses its own curl handle.
#ifndef VMLET_IMAGE_HTTP_CLIENT_H_
#define VMLET_IMAGE_HTTP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace vmlet::image {

struct TlsSettings {
  std::string ca_file;  // PEM bundle to trust instead of the system store; empty = system.
  bool insecure_skip_verify = false;
  std::string cert_file, key_file;  // Client certificate, optional.
};

// Receives the body of a successful (2xx) response in order. A non-OK status
// aborts the transfer and is what HttpFetch returns.
using BodySink = std::function<absl::Status(std::string_view chunk)>;
using ProgressFn = std::function<void(int64_t bytes_done, int64_t bytes_total /* -1 unknown */)>;

struct HttpResponse;

struct HttpRequest {
  std::string method = "GET";  // "HEAD" sends no body and reads none.
  std::string url;
  std::vector<std::string> headers;  // "Name: value".
  TlsSettings tls;
  // > 0: sends "Range: bytes=N-", and the sink receives the bytes from
  // offset N on whatever the server does: when it ignores the range and
  // answers 200, the first N bytes are skipped here; a 206 whose
  // Content-Range starts after N is UNAVAILABLE.
  int64_t range_start = 0;
  std::string body;  // Request body (e.g. a POSTed form); sent when non-empty.
  // The transfer is aborted (UNAVAILABLE) when it moves less than one byte
  // per second for this long.
  absl::Duration low_speed_time = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(30);
  // Optional: called with the status and headers of the final response just
  // before its first body byte (not for a response without a body).
  std::function<void(const HttpResponse& head)> on_body_start;
};

struct HttpResponse {
  long status = 0;                             // Of the final response, after redirects.
  std::map<std::string, std::string> headers;  // Of the final response; lowercase names.
  std::string effective_url;                   // After redirects.
  // The body when no sink was given, or when the response was not 2xx (an
  // error document, truncated at the limit).
  std::string body;
};

// Performs one transfer. Follows up to 10 redirects; an Authorization header
// is only sent to the host, port and scheme of `request.url` (registries
// redirect blobs to storage on other hosts). Proxies come from the usual
// environment variables, except for loopback addresses.
//
// The HTTP status is not an error here. Errors: transport failures
// (refused, reset, timeout, TLS, truncated body) are UNAVAILABLE — a failed
// certificate verification says so and names ca_file and
// insecure_skip_verify; a bad URL is INVALID_ARGUMENT; too many redirects
// FAILED_PRECONDITION; a 2xx body over `max_buffered_body` without a sink
// RESOURCE_EXHAUSTED; a sink's error is returned as it is.
absl::StatusOr<HttpResponse> HttpFetch(const HttpRequest& request, const BodySink& sink = nullptr,
                                       size_t max_buffered_body = 4 << 20);

// True for statuses worth retrying: 408, 429, 500, 502, 503, 504.
bool IsRetryableHttpStatus(long status);

// The wait before retry number `retry` (1-based): first * 2^(retry-1), plus
// up to 25% random jitter, capped at 30 s.
absl::Duration RetryBackoff(absl::Duration first, int retry);

// The delay a 429/503 response's Retry-After header asks for (seconds form
// only), capped at 60 s; zero when absent or unparsable.
absl::Duration RetryAfter(const HttpResponse& response);

// "host[:port]" of an http(s) URL, lowercase; empty when it has none.
std::string UrlHostPort(std::string_view url);

// Percent-encodes `text` for a query string or form (RFC 3986 unreserved
// characters are kept).
std::string UrlEncode(std::string_view text);

}  // namespace vmlet::image

#endif  // VMLET_IMAGE_HTTP_CLIENT_H_

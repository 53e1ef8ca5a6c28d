#include "image/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>

#include "base/str_util.h"
#include "vmlet_build_config.h"

namespace vmlet::image {
namespace {

constexpr long kMaxRedirects = 10;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' ||
                           text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

bool ParseInt64(std::string_view text, int64_t* value) {
  if (text.empty() || text.size() > 18) return false;
  int64_t result = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    result = result * 10 + (c - '0');
  }
  *value = result;
  return true;
}

// The first byte offset of "bytes <first>-<last>/<total>".
bool ParseContentRangeStart(std::string_view value, int64_t* start) {
  value = Trim(value);
  if (!value.starts_with("bytes ")) return false;
  value.remove_prefix(6);
  size_t dash = value.find('-');
  if (dash == std::string_view::npos) return false;
  return ParseInt64(Trim(value.substr(0, dash)), start);
}

// What the curl callbacks see of one transfer. Lives on HttpFetch's stack.
struct Transfer {
  const HttpRequest* request = nullptr;
  const BodySink* sink = nullptr;
  size_t max_buffered_body = 0;
  HttpResponse response;
  absl::Status error;         // Set by a callback that aborted the transfer.
  bool body_started = false;  // The current response's body has begun.
  bool deliver = false;       // The current response's body goes to the caller.
  int64_t skip = 0;           // Bytes still to drop before delivering (ignored Range).
};

size_t OnHeader(char* buffer, size_t size, size_t count, void* user) {
  Transfer& transfer = *static_cast<Transfer*>(user);
  size_t length = size * count;
  std::string_view line(buffer, length);
  if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or a 100 Continue): start over.
    transfer.response.headers.clear();
    transfer.response.body.clear();
    transfer.body_started = false;
    transfer.response.status = 0;
    size_t space = line.find(' ');
    if (space != std::string_view::npos) {
      int64_t status = 0;
      if (ParseInt64(line.substr(space + 1, 3), &status)) transfer.response.status = status;
    }
    return length;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return length;
  std::string name = Lowercase(Trim(line.substr(0, colon)));
  std::string_view value = Trim(line.substr(colon + 1));
  auto [it, inserted] = transfer.response.headers.emplace(name, std::string(value));
  if (!inserted) StrAppend(&it->second, ", ", value);
  return length;
}

// Decides, at the first byte of the final response's body, where it goes.
absl::Status StartBody(Transfer& transfer) {
  transfer.body_started = true;
  if (transfer.request->on_body_start) transfer.request->on_body_start(transfer.response);
  long status = transfer.response.status;
  transfer.deliver = status >= 200 && status < 300;
  transfer.skip = 0;
  int64_t range_start = transfer.request->range_start;
  if (!transfer.deliver || range_start <= 0) return absl::OkStatus();
  if (status != 206) {
    transfer.skip = range_start;  // The server ignored the Range header.
    return absl::OkStatus();
  }
  auto it = transfer.response.headers.find("content-range");
  int64_t start = 0;
  if (it == transfer.response.headers.end() || !ParseContentRangeStart(it->second, &start)) {
    return absl::UnavailableError(
        StrCat(transfer.request->url, ": 206 response without a valid Content-Range header"));
  }
  if (start > range_start) {
    return absl::UnavailableError(StrCat(transfer.request->url, ": asked for bytes from ",
                                         range_start, " but the server sent bytes from ", start));
  }
  transfer.skip = range_start - start;
  return absl::OkStatus();
}

size_t OnBody(char* buffer, size_t size, size_t count, void* user) {
  Transfer& transfer = *static_cast<Transfer*>(user);
  size_t length = size * count;
  if (!transfer.body_started) {
    transfer.error = StartBody(transfer);
    if (!transfer.error.ok()) return 0;
  }
  std::string_view chunk(buffer, length);
  if (!transfer.deliver) {
    // An error document: keep its beginning for the message.
    size_t room = transfer.max_buffered_body -
                  std::min(transfer.max_buffered_body, transfer.response.body.size());
    transfer.response.body.append(chunk.substr(0, std::min(room, chunk.size())));
    return length;
  }
  if (transfer.skip > 0) {
    size_t dropped = static_cast<size_t>(std::min<int64_t>(transfer.skip, chunk.size()));
    transfer.skip -= dropped;
    chunk.remove_prefix(dropped);
    if (chunk.empty()) return length;
  }
  if (*transfer.sink) {
    transfer.error = (*transfer.sink)(chunk);
    return transfer.error.ok() ? length : 0;
  }
  if (transfer.response.body.size() + chunk.size() > transfer.max_buffered_body) {
    transfer.error = absl::ResourceExhaustedError(StrCat("the response body of ",
                                                         transfer.request->url, " is larger than ",
                                                         transfer.max_buffered_body, " bytes"));
    return 0;
  }
  transfer.response.body.append(chunk);
  return length;
}

std::string NoProxyList() {
  std::string list;
  for (const char* name : {"no_proxy", "NO_PROXY"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
      list = value;
      break;
    }
  }
  if (list == "*") return list;
  if (!list.empty()) list.push_back(',');
  list.append("localhost,127.0.0.1,::1");
  return list;
}

absl::Status CurlError(CURLcode code, const char* detail, const HttpRequest& request) {
  std::string message = curl_easy_strerror(code);
  if (detail != nullptr && *detail != '\0') StrAppend(&message, ": ", Trim(detail));
  std::string what = StrCat(request.method, " ", request.url);
  switch (code) {
    case CURLE_URL_MALFORMAT:
      return absl::InvalidArgumentError(StrCat(what, ": ", message));
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::FailedPreconditionError(
          StrCat(what, ": redirected to a URL that is not http(s): ", message));
    case CURLE_TOO_MANY_REDIRECTS:
      return absl::FailedPreconditionError(
          StrCat(what, ": more than ", kMaxRedirects, " redirects: ", message));
    case CURLE_PEER_FAILED_VERIFICATION:
      return absl::UnavailableError(StrCat(
          what, ": TLS certificate verification of ", UrlHostPort(request.url), " failed (",
          message,
          "); set ca_file to a PEM bundle that trusts it, or insecure_skip_verify for testing"));
    case CURLE_SSL_CACERT_BADFILE:
      return absl::FailedPreconditionError(
          StrCat(what, ": cannot use ca_file \"", request.tls.ca_file, "\": ", message));
    case CURLE_SSL_CERTPROBLEM:
      return absl::FailedPreconditionError(StrCat(what, ": cannot use cert_file \"",
                                                  request.tls.cert_file, "\" / key_file \"",
                                                  request.tls.key_file, "\": ", message));
    default:
      return absl::UnavailableError(StrCat(what, ": ", message));
  }
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

}  // namespace

absl::StatusOr<HttpResponse> HttpFetch(const HttpRequest& request, const BodySink& sink,
                                       size_t max_buffered_body) {
  std::string scheme = Lowercase(request.url.substr(0, request.url.find("://")));
  if (request.url.find("://") == std::string::npos || (scheme != "http" && scheme != "https")) {
    return absl::InvalidArgumentError(
        StrCat("URL \"", request.url, "\" is not an http:// or https:// URL"));
  }
  GlobalInitOnce();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return absl::InternalError("curl_easy_init failed");
  CURL* c = curl.get();

  Transfer transfer;
  transfer.request = &request;
  transfer.sink = &sink;
  transfer.max_buffered_body = max_buffered_body;

  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&headers](const std::string& header) {
    curl_slist* next = curl_slist_append(headers.get(), header.c_str());
    if (next != nullptr) {
      (void)headers.release();
      headers.reset(next);
    }
  };
  for (const std::string& header : request.headers) add_header(header);
  add_header("Expect:");  // No 100-continue round trip for small forms.

  char error_buffer[CURL_ERROR_SIZE] = {};
  std::string no_proxy = NoProxyList();
  std::string range = StrCat(request.range_start, "-");
  long low_speed_seconds = std::max<long>(1, absl::ToInt64Seconds(request.low_speed_time));
  long connect_ms = std::max<long>(1, absl::ToInt64Milliseconds(request.connect_timeout));

  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, kMaxRedirects);
  // Custom Authorization headers stay with the first host, port and scheme.
  curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "vmlet/" VMLET_VERSION);
  curl_easy_setopt(c, CURLOPT_NOPROXY, no_proxy.c_str());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, low_speed_seconds);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  if (request.range_start > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET" || !request.body.empty()) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (!request.body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
  }
  if (!request.tls.ca_file.empty())
    curl_easy_setopt(c, CURLOPT_CAINFO, request.tls.ca_file.c_str());
  if (request.tls.insecure_skip_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!request.tls.cert_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, request.tls.cert_file.c_str());
  }
  if (!request.tls.key_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLKEY, request.tls.key_file.c_str());
  }

  CURLcode code = curl_easy_perform(c);
  if (!transfer.error.ok()) return transfer.error;
  if (code != CURLE_OK) return CurlError(code, error_buffer, request);
  if (transfer.deliver && transfer.skip > 0) {
    return absl::UnavailableError(StrCat(request.method, " ", request.url,
                                         ": the server ignored the Range header and its body "
                                         "ended before byte ",
                                         request.range_start));
  }
  char* effective_url = nullptr;
  if (curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective_url) == CURLE_OK &&
      effective_url != nullptr) {
    transfer.response.effective_url = effective_url;
  }
  long status = 0;
  if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status != 0) {
    transfer.response.status = status;
  }
  return std::move(transfer.response);
}

bool IsRetryableHttpStatus(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

absl::Duration RetryBackoff(absl::Duration first, int retry) {
  int doublings = std::clamp(retry - 1, 0, 20);
  absl::Duration delay = first * (int64_t{1} << doublings);
  thread_local std::mt19937_64 random{std::random_device{}()};
  double jitter = std::uniform_real_distribution<double>(0.0, 0.25)(random);
  delay += delay * jitter;
  return std::min(delay, absl::Seconds(30));
}

absl::Duration RetryAfter(const HttpResponse& response) {
  auto it = response.headers.find("retry-after");
  int64_t seconds = 0;
  if (it == response.headers.end() || !ParseInt64(Trim(it->second), &seconds)) {
    return absl::ZeroDuration();
  }
  return std::min(absl::Seconds(seconds), absl::Seconds(60));
}

std::string UrlHostPort(std::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "";
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  return Lowercase(rest);
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace vmlet::image

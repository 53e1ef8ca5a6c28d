#include "image/registry_client.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "image/digest.h"

namespace vmlet::image {
namespace {

using json = nlohmann::json;

constexpr Logger kLog("image");

// A try that brought this many new bytes of a blob does not count as failed.
constexpr int64_t kProgressResetBytes = 1 << 20;

constexpr std::string_view kDockerHubRegistryHost = "registry-1.docker.io";
constexpr std::string_view kDockerSchema1MediaType =
    "application/vnd.docker.distribution.manifest.v1+json";
constexpr std::string_view kDockerSchema1SignedMediaType =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

std::string Lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// --- WWW-Authenticate -------------------------------------------------------

struct Challenge {
  std::string scheme;                         // Lowercase: "bearer", "basic".
  std::map<std::string, std::string> params;  // Lowercase names.
};

// Parses `Bearer realm="https://auth",service="registry", Basic realm="x"`.
std::vector<Challenge> ParseChallenges(std::string_view header) {
  std::vector<Challenge> challenges;
  size_t pos = 0;
  auto skip = [&](std::string_view chars) {
    while (pos < header.size() && chars.find(header[pos]) != std::string_view::npos) ++pos;
  };
  while (pos < header.size()) {
    skip(" \t,");
    size_t start = pos;
    while (pos < header.size() &&
           std::string_view(" \t,=").find(header[pos]) == std::string::npos) {
      ++pos;
    }
    std::string token = Lowercase(header.substr(start, pos - start));
    if (token.empty()) {
      ++pos;  // A stray "=".
      continue;
    }
    skip(" \t");
    if (pos < header.size() && header[pos] == '=' && !challenges.empty()) {
      ++pos;
      skip(" \t");
      std::string value;
      if (pos < header.size() && header[pos] == '"') {
        for (++pos; pos < header.size() && header[pos] != '"'; ++pos) {
          if (header[pos] == '\\' && pos + 1 < header.size()) ++pos;
          value.push_back(header[pos]);
        }
        ++pos;  // The closing quote.
      } else {
        while (pos < header.size() && header[pos] != ',' && header[pos] != ' ') {
          value.push_back(header[pos++]);
        }
      }
      challenges.back().params[token] = value;
    } else {
      challenges.push_back(Challenge{.scheme = token});
    }
  }
  return challenges;
}

// --- Manifests ----------------------------------------------------------

bool IsIndexType(std::string_view type) {
  return type == kOciIndexMediaType || type == kDockerManifestListMediaType;
}
bool IsManifestType(std::string_view type) {
  return type == kOciManifestMediaType || type == kDockerManifestMediaType;
}

// The media type from the document's mediaType field, else the Content-Type
// header, else guessed from the structure (mediaType is optional in OCI).
std::string MediaTypeOf(const json& doc, const HttpResponse& response) {
  if (auto it = doc.find("mediaType"); it != doc.end() && it->is_string()) {
    return it->get<std::string>();
  }
  if (auto it = doc.find("schemaVersion");
      it != doc.end() && it->is_number_integer() && it->get<int64_t>() == 1) {
    return std::string(kDockerSchema1MediaType);
  }
  if (auto it = response.headers.find("content-type"); it != response.headers.end()) {
    std::string type = Lowercase(it->second.substr(0, it->second.find(';')));
    type.erase(std::remove(type.begin(), type.end(), ' '), type.end());
    if (IsIndexType(type) || IsManifestType(type) || type == kDockerSchema1MediaType ||
        type == kDockerSchema1SignedMediaType) {
      return type;
    }
  }
  if (doc.contains("manifests")) return std::string(kOciIndexMediaType);
  if (doc.contains("config") && doc.contains("layers")) return std::string(kOciManifestMediaType);
  return "";
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& item, const std::string& field) {
  if (!item.is_object()) {
    return absl::FailedPreconditionError(StrCat(field, ": expected a descriptor object"));
  }
  Descriptor descriptor;
  if (auto it = item.find("mediaType"); it != item.end()) {
    if (!it->is_string()) {
      return absl::FailedPreconditionError(StrCat(field, ".mediaType: expected a string"));
    }
    descriptor.media_type = it->get<std::string>();
  }
  auto digest = item.find("digest");
  if (digest == item.end() || !digest->is_string()) {
    return absl::FailedPreconditionError(
        StrCat(field, ".digest: expected a string \"sha256:<64 hex digits>\""));
  }
  descriptor.digest = digest->get<std::string>();
  if (absl::Status valid = ValidateDigest(descriptor.digest, StrCat(field, ".digest"));
      !valid.ok()) {
    return absl::FailedPreconditionError(valid.message());
  }
  auto size = item.find("size");
  if (size == item.end() || !size->is_number_integer() ||
      (size->is_number_unsigned() &&
       size->get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}) ||
      size->get<int64_t>() < 0) {
    return absl::FailedPreconditionError(StrCat(field, ".size: expected a non-negative integer"));
  }
  descriptor.size = size->get<int64_t>();
  return descriptor;
}

// Parses a manifest's config and layers into `out`.
absl::Status ParseManifest(const json& doc, ResolvedManifest& out) {
  auto config = doc.find("config");
  if (config == doc.end()) return absl::FailedPreconditionError("no \"config\" descriptor");
  VMLET_ASSIGN_OR_RETURN(out.config, ParseDescriptor(*config, "config"));
  auto layers = doc.find("layers");
  if (layers == doc.end() || !layers->is_array()) {
    return absl::FailedPreconditionError("\"layers\": expected an array of descriptors");
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    VMLET_ASSIGN_OR_RETURN(Descriptor layer,
                           ParseDescriptor((*layers)[i], StrCat("layers[", i, "]")));
    out.layers.push_back(std::move(layer));
  }
  return absl::OkStatus();
}

std::string PlatformString(const json& entry) {
  auto platform = entry.find("platform");
  if (platform == entry.end() || !platform->is_object()) return "unspecified";
  auto text = [&](const char* key) {
    auto it = platform->find(key);
    return it != platform->end() && it->is_string() ? it->get<std::string>() : std::string("?");
  };
  std::string out = StrCat(text("os"), "/", text("architecture"));
  if (auto it = platform->find("variant"); it != platform->end() && it->is_string()) {
    StrAppend(&out, "/", it->get<std::string>());
  }
  return out;
}

// The index entry for os/arch (the variant is ignored). An entry without a
// platform is taken only when no entry names the platform.
absl::StatusOr<Descriptor> PickPlatform(const json& doc, const std::string& os,
                                        const std::string& arch) {
  auto manifests = doc.find("manifests");
  if (manifests == doc.end() || !manifests->is_array()) {
    return absl::FailedPreconditionError("\"manifests\": expected an array of descriptors");
  }
  std::optional<size_t> unspecified;
  std::string available;
  for (size_t i = 0; i < manifests->size(); ++i) {
    const json& entry = (*manifests)[i];
    if (!entry.is_object()) continue;
    auto platform = entry.find("platform");
    if (platform == entry.end() || !platform->is_object()) {
      if (!unspecified) unspecified = i;
    } else if (platform->value("os", json()) == os &&
               platform->value("architecture", json()) == arch) {
      return ParseDescriptor(entry, StrCat("manifests[", i, "]"));
    }
    StrAppend(&available, available.empty() ? "" : ", ", PlatformString(entry));
  }
  if (unspecified) {
    return ParseDescriptor((*manifests)[*unspecified], StrCat("manifests[", *unspecified, "]"));
  }
  return absl::NotFoundError(StrCat("no manifest for platform ", os, "/", arch,
                                    " (available: ", available.empty() ? "none" : available, ")"));
}

// "CODE: message" of the first error of a registry error document, or "".
std::string RegistryErrorText(const std::string& body, std::string* code) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return "";
  auto errors = doc.find("errors");
  if (errors == doc.end() || !errors->is_array() || errors->empty() || !(*errors)[0].is_object()) {
    return "";
  }
  const json& first = (*errors)[0];
  if (auto it = first.find("code"); it != first.end() && it->is_string()) {
    *code = it->get<std::string>();
  }
  std::string text = *code;
  if (auto it = first.find("message"); it != first.end() && it->is_string()) {
    StrAppend(&text, text.empty() ? "" : ": ", it->get<std::string>());
  }
  return text;
}

}  // namespace

RegistryClient::RegistryClient(Reference ref, RegistrySettings settings, Credentials credentials,
                               RegistryClientOptions options)
    : ref_(std::move(ref)),
      settings_(std::move(settings)),
      credentials_(std::move(credentials)),
      options_(std::move(options)),
      retry_after_(absl::ZeroDuration()) {
  if (options_.attempts < 1) options_.attempts = 1;
  const std::string scheme = settings_.plain_http ? "http://" : "https://";
  for (const std::string& mirror : settings_.mirrors) {
    std::string base = mirror.find("://") == std::string::npos ? scheme + mirror : mirror;
    while (base.ends_with('/')) base.pop_back();
    endpoints_.push_back(Endpoint{.base_url = std::move(base), .is_mirror = true});
  }
  std::string host =
      ref_.domain == kDockerHubDomain ? std::string(kDockerHubRegistryHost) : ref_.domain;
  Endpoint registry{.base_url = scheme + host};
  if (!credentials_.registry_token.empty()) {
    registry.authorization = StrCat("Authorization: Bearer ", credentials_.registry_token);
  }
  endpoints_.push_back(std::move(registry));
}

std::string RegistryClient::BasicCredentials() const {
  if (!credentials_.auth.empty()) return credentials_.auth;
  if (credentials_.username.empty()) return "";
  return absl::Base64Escape(StrCat(credentials_.username, ":", credentials_.password));
}

absl::Status RegistryClient::Unauthenticated(const std::string& host) const {
  if (credentials_.empty()) {
    return absl::UnauthenticatedError(
        StrCat("registry ", host, " requires authentication for repository ", ref_.repository,
               " and no credentials were given (or the repository does not exist)"));
  }
  return absl::UnauthenticatedError(
      StrCat("registry ", host, " rejected the credentials for repository ", ref_.repository));
}

absl::StatusOr<std::string> RegistryClient::Authorize(const Endpoint& endpoint,
                                                      const HttpResponse& response) {
  const std::string host = UrlHostPort(endpoint.base_url);
  auto header = response.headers.find("www-authenticate");
  std::vector<Challenge> challenges =
      header == response.headers.end() ? std::vector<Challenge>() : ParseChallenges(header->second);
  // Mirrors are pulled from anonymously.
  const std::string basic = endpoint.is_mirror ? "" : BasicCredentials();
  const std::string identity_token = endpoint.is_mirror ? "" : credentials_.identity_token;
  for (const Challenge& challenge : challenges) {
    if (challenge.scheme != "bearer") continue;
    auto realm = challenge.params.find("realm");
    if (realm == challenge.params.end() || realm->second.empty()) continue;
    const std::string service =
        challenge.params.contains("service") ? challenge.params.at("service") : "";
    const std::string scope = StrCat("repository:", ref_.repository, ":pull");
    if (realm->second.starts_with("http://") && !settings_.plain_http &&
        (!basic.empty() || !identity_token.empty())) {
      return absl::FailedPreconditionError(
          StrCat("registry ", host, " asks for credentials at the plain-http token realm ",
                 realm->second, "; refusing to send them unencrypted"));
    }
    HttpRequest request{.url = realm->second,
                        .tls = settings_.tls,
                        .low_speed_time = options_.low_speed_time,
                        .connect_timeout = options_.connect_timeout};
    if (!identity_token.empty()) {
      // OAuth2 refresh token grant, as `docker login` with an identity token.
      request.method = "POST";
      request.headers.push_back("Content-Type: application/x-www-form-urlencoded");
      request.body =
          StrCat("grant_type=refresh_token&client_id=vmlet&service=", UrlEncode(service),
                 "&scope=", UrlEncode(scope), "&refresh_token=", UrlEncode(identity_token));
    } else {
      StrAppend(&request.url, request.url.find('?') == std::string::npos ? "?" : "&");
      if (!service.empty()) StrAppend(&request.url, "service=", UrlEncode(service), "&");
      StrAppend(&request.url, "scope=", UrlEncode(scope));
      if (!basic.empty()) request.headers.push_back(StrCat("Authorization: Basic ", basic));
    }
    VMLET_ASSIGN_OR_RETURN(HttpResponse token_response, HttpFetch(request, nullptr, 1 << 20));
    long status = token_response.status;
    if (status == 401 || (status == 400 && !identity_token.empty())) {
      return endpoint.is_mirror ? absl::UnauthenticatedError(StrCat(
                                      "mirror ", host, " requires authentication for repository ",
                                      ref_.repository))
                                : Unauthenticated(host);
    }
    if (status == 403) {
      return absl::PermissionDeniedError(StrCat("the token server of registry ", host,
                                                " denied access to repository ", ref_.repository));
    }
    if (status < 200 || status >= 300) {
      std::string message = StrCat("the token server ", realm->second, " of registry ", host,
                                   " answered HTTP ", status);
      return IsRetryableHttpStatus(status) ? absl::UnavailableError(message)
                                           : absl::FailedPreconditionError(message);
    }
    json doc = json::parse(token_response.body, nullptr, false);
    for (const char* key : {"token", "access_token"}) {
      if (doc.is_discarded() || !doc.is_object()) break;
      auto it = doc.find(key);
      if (it != doc.end() && it->is_string() && !it->get<std::string>().empty()) {
        return StrCat("Authorization: Bearer ", it->get<std::string>());
      }
    }
    return absl::FailedPreconditionError(
        StrCat("the token server ", realm->second, " of registry ", host,
               " answered without a \"token\" or \"access_token\" string"));
  }
  for (const Challenge& challenge : challenges) {
    if (challenge.scheme == "basic" && !basic.empty()) {
      return StrCat("Authorization: Basic ", basic);
    }
  }
  if (endpoint.is_mirror) {
    return absl::UnauthenticatedError(
        StrCat("mirror ", host, " requires authentication for repository ", ref_.repository));
  }
  return Unauthenticated(host);
}

absl::StatusOr<HttpResponse> RegistryClient::FetchFrom(Endpoint& endpoint, const std::string& path,
                                                       const std::vector<std::string>& headers,
                                                       const BodySink& sink, size_t max_buffered,
                                                       int64_t range_start) {
  for (bool authorized = false;; authorized = true) {
    HttpRequest request{.url = endpoint.base_url + path,
                        .headers = headers,
                        .tls = settings_.tls,
                        .range_start = range_start,
                        .low_speed_time = options_.low_speed_time,
                        .connect_timeout = options_.connect_timeout};
    if (!endpoint.authorization.empty()) request.headers.push_back(endpoint.authorization);
    VMLET_ASSIGN_OR_RETURN(HttpResponse response, HttpFetch(request, sink, max_buffered));
    if (response.status != 401 || authorized) return response;
    // A first challenge, or the cached token expired: authenticate once.
    VMLET_ASSIGN_OR_RETURN(endpoint.authorization, Authorize(endpoint, response));
  }
}

absl::Status RegistryClient::ErrorFor(const Endpoint& endpoint, const HttpResponse& response,
                                      const std::string& what) const {
  const std::string host = UrlHostPort(endpoint.base_url);
  const std::string kind = endpoint.is_mirror ? "mirror" : "registry";
  std::string code;
  std::string detail = RegistryErrorText(response.body, &code);
  std::string answer = StrCat("HTTP ", response.status, detail.empty() ? "" : " ", detail);
  if (response.status == 401) {
    if (endpoint.is_mirror) {
      return absl::UnauthenticatedError(
          StrCat("mirror ", host, " requires authentication for repository ", ref_.repository));
    }
    return Unauthenticated(host);
  }
  if (response.status == 403 || code == "DENIED") {
    return absl::PermissionDeniedError(StrCat(kind, " ", host, " denied access to ", what,
                                              " of repository ", ref_.repository, " (", answer,
                                              ")"));
  }
  if (response.status == 404 || code == "MANIFEST_UNKNOWN" || code == "NAME_UNKNOWN" ||
      code == "BLOB_UNKNOWN") {
    return absl::NotFoundError(StrCat("image \"", ref_.String(), "\" not found: ", kind, " ", host,
                                      " has no ", what, " (", answer, ")"));
  }
  if (response.status == 416) {
    return absl::OutOfRangeError(
        StrCat(kind, " ", host, " cannot serve the requested range of ", what, " (", answer, ")"));
  }
  std::string message = StrCat(kind, " ", host, " answered ", answer, " for ", what, " of image \"",
                               ref_.String(), "\"");
  return IsRetryableHttpStatus(response.status) ? absl::UnavailableError(message)
                                                : absl::FailedPreconditionError(message);
}

absl::StatusOr<HttpResponse> RegistryClient::TryEndpoints(const std::string& path,
                                                          const std::vector<std::string>& headers,
                                                          const std::string& what,
                                                          const BodySink& sink, size_t max_buffered,
                                                          const int64_t* range_start, bool* fatal) {
  bool sink_failed = false;
  BodySink guarded;
  if (sink) {
    guarded = [&](std::string_view chunk) {
      absl::Status status = sink(chunk);
      if (!status.ok()) sink_failed = true;
      return status;
    };
  }
  absl::Status last = absl::UnavailableError("no endpoint to pull from");
  for (Endpoint& endpoint : endpoints_) {
    if (endpoint.dead) continue;
    absl::StatusOr<HttpResponse> response =
        FetchFrom(endpoint, path, headers, guarded, max_buffered, range_start ? *range_start : 0);
    if (sink_failed) {
      *fatal = true;
      return response.status();
    }
    if (response.ok() && response->status >= 200 && response->status < 300) return response;
    absl::Status status = response.ok() ? ErrorFor(endpoint, *response, what) : response.status();
    if (response.ok() && IsRetryableHttpStatus(response->status)) {
      retry_after_ = RetryAfter(*response);
    }
    if (!endpoint.is_mirror) return status;
    if (!response.ok() && status.code() == absl::StatusCode::kUnavailable) {
      endpoint.dead = true;  // Unreachable: not worth a timeout per blob.
      kLog.Warning("mirror {} failed, not using it for the rest of this pull of {}: {}",
                   endpoint.base_url, ref_.String(), status.message());
    } else {
      kLog.Debug("mirror {} failed for {}, trying the next: {}", endpoint.base_url, what,
                 status.message());
    }
    last = status;
  }
  return last;  // Unreachable in practice: the registry comes last and returns.
}

absl::Status RegistryClient::Retry(const std::function<absl::Status(bool* fatal)>& try_once,
                                   const std::function<bool()>& progressed) {
  for (int failures = 0;;) {
    bool fatal = false;
    retry_after_ = absl::ZeroDuration();
    absl::Status status = try_once(&fatal);
    if (status.ok() || fatal || status.code() != absl::StatusCode::kUnavailable) return status;
    if (progressed && progressed()) failures = 0;
    if (++failures >= options_.attempts) {
      return absl::UnavailableError(
          StrCat("gave up after ", failures, " failed tries: ", status.message()));
    }
    absl::Duration delay = std::max(RetryBackoff(options_.first_backoff, failures), retry_after_);
    kLog.Info("pulling {}: {}; retrying in {}", ref_.String(), status.message(),
              absl::FormatDuration(delay));
    absl::SleepFor(delay);
  }
}

absl::StatusOr<HttpResponse> RegistryClient::FetchManifest(const std::string& tag_or_digest,
                                                           const std::string& expected_digest) {
  static const std::vector<std::string> kAccept = {
      StrCat("Accept: ", kOciManifestMediaType, ", ", kOciIndexMediaType, ", ",
             kDockerManifestMediaType, ", ", kDockerManifestListMediaType)};
  const std::string path = StrCat("/v2/", ref_.repository, "/manifests/", tag_or_digest);
  const std::string what = StrCat("manifest ", tag_or_digest);
  HttpResponse response;
  absl::Status status = Retry([&](bool* fatal) {
    absl::StatusOr<HttpResponse> fetched =
        TryEndpoints(path, kAccept, what, nullptr, kMaxManifestSize, nullptr, fatal);
    if (!fetched.ok()) return fetched.status();
    response = std::move(fetched).value();
    return absl::OkStatus();
  });
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    return absl::FailedPreconditionError(StrCat(what, " of image \"", ref_.String(),
                                                "\" is larger than the limit of ", kMaxManifestSize,
                                                " bytes"));
  }
  VMLET_RETURN_IF_ERROR(status);
  const std::string actual = Sha256Digest(response.body);
  if (!expected_digest.empty() && actual != expected_digest) {
    return absl::DataLossError(StrCat(what, " of image \"", ref_.String(),
                                      "\" failed verification: expected digest ", expected_digest,
                                      ", got ", actual));
  }
  auto header = response.headers.find("docker-content-digest");
  if (header != response.headers.end() && IsSha256Digest(header->second) &&
      header->second != actual) {
    return absl::DataLossError(StrCat(what, " of image \"", ref_.String(),
                                      "\" failed verification: the registry announced digest ",
                                      header->second, ", got ", actual));
  }
  return response;
}

absl::StatusOr<ResolvedManifest> RegistryClient::ResolveManifest() {
  const std::string image = ref_.String();
  ResolvedManifest out;
  VMLET_ASSIGN_OR_RETURN(HttpResponse response,
                         FetchManifest(ref_.digest.empty() ? ref_.tag : ref_.digest, ref_.digest));
  out.digest = Sha256Digest(response.body);
  out.manifest_digest = out.digest;
  for (int level = 0;; ++level) {
    const std::string context =
        StrCat("manifest ", out.manifest_digest, " of image \"", image, "\"");
    json doc = json::parse(response.body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      return absl::FailedPreconditionError(StrCat(context, " is not a JSON object"));
    }
    std::string type = MediaTypeOf(doc, response);
    if (type == kDockerSchema1MediaType || type == kDockerSchema1SignedMediaType) {
      return absl::FailedPreconditionError(
          StrCat(context,
                 " is a Docker schema 1 manifest, which is unsupported: push the image "
                 "again with a current tool (Docker schema 2 or OCI)"));
    }
    if (IsManifestType(type)) {
      out.media_type = type;
      out.raw = std::move(response.body);
      VMLET_RETURN_IF_ERROR(Annotate(ParseManifest(doc, out), context));
      return out;
    }
    if (!IsIndexType(type)) {
      return absl::FailedPreconditionError(
          StrCat(context, " has unsupported media type \"", type, "\": expected ",
                 kOciManifestMediaType, ", ", kOciIndexMediaType, ", ", kDockerManifestMediaType,
                 " or ", kDockerManifestListMediaType));
    }
    if (level > 0) {
      return absl::FailedPreconditionError(
          StrCat(context, " is an index inside an index, which is unsupported"));
    }
    absl::StatusOr<Descriptor> child =
        PickPlatform(doc, options_.platform_os, options_.platform_arch);
    if (!child.ok()) {
      return absl::Status(child.status().code(), StrCat("image \"", image, "\" (index ", out.digest,
                                                        "): ", ToStd(child.status().message())));
    }
    VMLET_ASSIGN_OR_RETURN(response, FetchManifest(child->digest, child->digest));
    if (static_cast<int64_t>(response.body.size()) != child->size) {
      return absl::DataLossError(StrCat("manifest ", child->digest, " of image \"", image,
                                        "\" failed verification: the index gives its size as ",
                                        child->size, " bytes, got ", response.body.size()));
    }
    out.manifest_digest = child->digest;
  }
}

absl::StatusOr<std::string> RegistryClient::FetchBlob(const Descriptor& blob, size_t max_size) {
  if (blob.size > static_cast<int64_t>(max_size)) {
    return absl::FailedPreconditionError(StrCat("blob ", blob.digest, " of image \"", ref_.String(),
                                                "\" is ", blob.size,
                                                " bytes, more than the limit of ", max_size));
  }
  std::string content;
  VMLET_RETURN_IF_ERROR(StreamBlob(blob, [&](std::string_view chunk) {
    content.append(chunk);
    return absl::OkStatus();
  }));
  return content;
}

absl::Status RegistryClient::StreamBlob(const Descriptor& blob, const BodySink& sink,
                                        const ProgressFn& progress) {
  VMLET_RETURN_IF_ERROR(ValidateDigest(blob.digest, "blob digest"));
  if (blob.size < 0) {
    return absl::InvalidArgumentError(
        StrCat("blob ", blob.digest, " has size ", blob.size, ": expected a non-negative size"));
  }
  const std::string what = StrCat("blob ", blob.digest);
  const std::string path = StrCat("/v2/", ref_.repository, "/blobs/", blob.digest);
  Sha256Hasher hasher;
  int64_t delivered = 0;
  int64_t delivered_at_last_failure = 0;
  const BodySink counted = [&](std::string_view chunk) {
    if (delivered + static_cast<int64_t>(chunk.size()) > blob.size) {
      return absl::DataLossError(StrCat(what, " of image \"", ref_.String(),
                                        "\" failed verification: it is larger than the ", blob.size,
                                        " bytes its descriptor gives"));
    }
    hasher.Update(chunk);
    VMLET_RETURN_IF_ERROR(sink(chunk));
    delivered += static_cast<int64_t>(chunk.size());
    if (progress) progress(delivered, blob.size);
    return absl::OkStatus();
  };
  absl::Status status = Retry(
      [&](bool* fatal) {
        // A connection that dropped after the last byte leaves nothing to fetch.
        const bool complete = blob.size > 0 && delivered == blob.size;
        if (complete) return absl::OkStatus();
        absl::StatusOr<HttpResponse> response =
            TryEndpoints(path, {}, what, counted, 1 << 16, &delivered, fatal);
        if (!response.ok()) {
          if (!*fatal && blob.size > 0 && delivered == blob.size) return absl::OkStatus();
          return response.status();
        }
        if (delivered < blob.size) {
          return absl::UnavailableError(StrCat("the download of ", what, " ended after ", delivered,
                                               " of ", blob.size, " bytes"));
        }
        return absl::OkStatus();
      },
      [&] {
        bool progressed = delivered - delivered_at_last_failure >= kProgressResetBytes;
        delivered_at_last_failure = delivered;
        return progressed;
      });
  if (status.code() == absl::StatusCode::kOutOfRange) {
    return absl::DataLossError(StrCat(what, " of image \"", ref_.String(),
                                      "\" failed verification: the registry has only ", delivered,
                                      " of the ", blob.size, " bytes its descriptor gives (",
                                      ToStd(status.message()), ")"));
  }
  VMLET_RETURN_IF_ERROR(status);
  const std::string actual = hasher.Finish();
  if (actual != blob.digest) {
    return absl::DataLossError(StrCat(what, " of image \"", ref_.String(),
                                      "\" failed verification: expected digest ", blob.digest,
                                      ", got ", actual));
  }
  return absl::OkStatus();
}

}  // namespace vmlet::image

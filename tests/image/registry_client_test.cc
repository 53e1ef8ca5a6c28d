// RegistryClient (and HttpFetch under it) against a fake registry served by
// TestHttpServer over loopback.
#include "image/registry_client.h"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "base/str_util.h"
#include "image/digest.h"
#include "image/http_client.h"
#include "image/reference.h"
#include "tests/cri/cri_test_util.h"
#include "tests/image/test_http_server.h"

namespace vmlet::image {
namespace {

using ::testing::HasSubstr;
using ::vmlet::testing::TestHttpServer;
using json = nlohmann::json;
using Request = TestHttpServer::Request;
using Responder = TestHttpServer::Responder;

constexpr char kRepo[] = "vms/tiny";
constexpr char kToken[] = "good-token";

std::string Message(const absl::Status& status) { return std::string(status.message()); }

json DescriptorJson(const Descriptor& d) {
  return {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
}

// "bytes=N-" -> N; 0 otherwise.
int64_t RangeStart(const Request& request) {
  std::string range = request.Header("range");
  if (!range.starts_with("bytes=")) return 0;
  return std::stoll(range.substr(6));
}

// A body of `size` bytes that is not all the same byte.
std::string Pattern(size_t size, char seed = 'a') {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>(seed + (i * 7 + i / 13) % 26);
  return out;
}

class RegistryClientTest : public ::testing::Test {
 protected:
  enum class Auth { kNone, kBearer, kBasic };

  void SetUp() override {
    auto server = TestHttpServer::Start(
        [this](const Request& request, Responder& responder) { Handle(request, responder); });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
  }

  // Adds a config blob, `layers` layer blobs and a manifest under `tag`;
  // returns the manifest's descriptor.
  Descriptor AddImage(const std::string& tag, int layers = 2,
                      std::string media_type = std::string(kOciManifestMediaType),
                      const std::string& seed = "x") {
    std::string config = json{{"architecture", "amd64"}, {"os", "linux"}, {"seed", seed}}.dump();
    json manifest = {
        {"schemaVersion", 2},
        {"mediaType", media_type},
        {"config", DescriptorJson(AddBlob(config, "application/vnd.oci.image.config.v1+json"))},
        {"layers", json::array()}};
    for (int i = 0; i < layers; ++i) {
      manifest["layers"].push_back(
          DescriptorJson(AddBlob(Pattern(1000 + i, static_cast<char>('a' + i)) + seed,
                                 "application/vnd.oci.image.layer.v1.tar+gzip")));
    }
    return AddManifest(tag, manifest.dump(), media_type);
  }

  Descriptor AddBlob(const std::string& content, const std::string& media_type = "") {
    std::string digest = Sha256Digest(content);
    std::lock_guard lock(mu_);
    blobs_[digest] = content;
    return {media_type, digest, static_cast<int64_t>(content.size())};
  }

  // Serves `body` under `tag` (if non-empty) and under its digest.
  Descriptor AddManifest(const std::string& tag, const std::string& body,
                         const std::string& media_type) {
    std::string digest = Sha256Digest(body);
    std::lock_guard lock(mu_);
    if (!tag.empty()) manifests_[tag] = {media_type, body};
    manifests_[digest] = {media_type, body};
    return {media_type, digest, static_cast<int64_t>(body.size())};
  }

  RegistryClient Client(const std::string& reference, Credentials credentials = {},
                        RegistrySettings settings = {}, int attempts = 4) {
    absl::StatusOr<Reference> ref = ParseReference(StrCat(server_->host_port(), "/", reference));
    EXPECT_TRUE(ref.ok()) << ref.status();
    settings.plain_http = true;
    RegistryClientOptions options{.attempts = attempts, .first_backoff = absl::Milliseconds(1)};
    return RegistryClient(*ref, std::move(settings), std::move(credentials), options);
  }

  static void SendError(Responder& responder, int status, const std::string& code,
                        const TestHttpServer::Headers& headers = {}) {
    json body = {{"errors", {{{"code", code}, {"message", StrCat(code, " from the fake")}}}}};
    TestHttpServer::Headers all = headers;
    all.emplace_back("Content-Type", "application/json");
    responder.Send(status, body.dump(), all);
  }

  // The fake registry: /token, then `hook_`, then auth, then content.
  void Handle(const Request& request, Responder& responder) {
    if (request.path == "/token") return HandleToken(request, responder);
    if (hook_ && hook_(request, responder)) return;
    if (auth_ == Auth::kBearer && request.Header("authorization") != StrCat("Bearer ", kToken)) {
      return SendError(responder, 401, "UNAUTHORIZED",
                       {{"WWW-Authenticate", StrCat("Bearer realm=\"", server_->url(),
                                                    "/token\",service=\"fake-registry\",",
                                                    "scope=\"repository:", kRepo, ":pull\"")}});
    }
    if (auth_ == Auth::kBasic && request.Header("authorization") != StrCat("Basic ", Basic())) {
      return SendError(responder, 401, "UNAUTHORIZED",
                       {{"WWW-Authenticate", "Basic realm=\"fake\""}});
    }
    const std::string prefix = StrCat("/v2/", kRepo, "/");
    if (request.path == "/v2/") return responder.Send(200, "{}");
    if (!request.path.starts_with(prefix)) return SendError(responder, 404, "NAME_UNKNOWN");
    std::string rest = request.path.substr(prefix.size());
    std::lock_guard lock(mu_);
    if (rest.starts_with("manifests/")) {
      auto it = manifests_.find(rest.substr(10));
      if (it == manifests_.end()) return SendError(responder, 404, "MANIFEST_UNKNOWN");
      return responder.Send(200, it->second.second, {{"Content-Type", it->second.first}});
    }
    if (rest.starts_with("blobs/")) {
      auto it = blobs_.find(rest.substr(6));
      if (it == blobs_.end()) return SendError(responder, 404, "BLOB_UNKNOWN");
      const std::string& blob = it->second;
      int64_t start = RangeStart(request);
      if (start > 0 && honour_range_) {
        if (start >= static_cast<int64_t>(blob.size())) return responder.Send(416);
        return responder.Send(
            206, std::string_view(blob).substr(start),
            {{"Content-Range", StrCat("bytes ", start, "-", blob.size() - 1, "/", blob.size())}});
      }
      return responder.Send(200, blob);
    }
    SendError(responder, 404, "NAME_UNKNOWN");
  }

  void HandleToken(const Request& request, Responder& responder) {
    token_requests_++;
    if (request.Param("service") != "fake-registry" ||
        request.Param("scope") != StrCat("repository:", kRepo, ":pull")) {
      return responder.Send(400, "bad service or scope");
    }
    if (request.Header("authorization") != StrCat("Basic ", Basic())) {
      return responder.Send(401, R"({"details":"incorrect username or password"})");
    }
    responder.Send(200, json{{"token", kToken}, {"expires_in", 300}}.dump(),
                   {{"Content-Type", "application/json"}});
  }

  static std::string Basic() { return absl::Base64Escape("alice:secret"); }
  static Credentials Alice() { return Credentials{.username = "alice", .password = "secret"}; }

  Auth auth_ = Auth::kNone;
  bool honour_range_ = true;
  std::atomic<int> token_requests_{0};
  // Runs first; returns true when it answered. Set before requests start.
  std::function<bool(const Request&, Responder&)> hook_;
  std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> manifests_;  // Guarded by mu_.
  std::map<std::string, std::string> blobs_;                              // Guarded by mu_.
  // Last, so that it is destroyed first: its threads use the members above.
  std::unique_ptr<TestHttpServer> server_;
};

// --- Manifests ----------------------------------------------------------

TEST_F(RegistryClientTest, ResolvesAManifestByTag) {
  Descriptor manifest = AddImage("1");
  RegistryClient client = Client("vms/tiny:1");
  absl::StatusOr<ResolvedManifest> resolved = client.ResolveManifest();
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, manifest.digest);
  EXPECT_EQ(resolved->manifest_digest, manifest.digest);
  EXPECT_EQ(resolved->media_type, kOciManifestMediaType);
  EXPECT_EQ(Sha256Digest(resolved->raw), manifest.digest);
  ASSERT_EQ(resolved->layers.size(), 2u);
  EXPECT_EQ(resolved->layers[1].size, 1001 + 1);
  EXPECT_EQ(resolved->layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+gzip");

  std::vector<Request> requests = server_->requests();
  ASSERT_FALSE(requests.empty());
  std::string accept = requests[0].Header("accept");
  EXPECT_THAT(accept, HasSubstr(std::string(kOciManifestMediaType)));
  EXPECT_THAT(accept, HasSubstr(std::string(kOciIndexMediaType)));
  EXPECT_THAT(accept, HasSubstr(std::string(kDockerManifestMediaType)));
  EXPECT_THAT(accept, HasSubstr(std::string(kDockerManifestListMediaType)));

  absl::StatusOr<std::string> config = client.FetchBlob(resolved->config);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(*config, HasSubstr("\"architecture\":\"amd64\""));
}

TEST_F(RegistryClientTest, ResolvesAManifestByDigestAndVerifiesIt) {
  Descriptor manifest = AddImage("1", 1, std::string(kDockerManifestMediaType));
  absl::StatusOr<ResolvedManifest> resolved =
      Client(StrCat("vms/tiny@", manifest.digest)).ResolveManifest();
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, manifest.digest);
  EXPECT_EQ(resolved->media_type, kDockerManifestMediaType);
  EXPECT_EQ(server_->CountRequests(StrCat("/v2/vms/tiny/manifests/", manifest.digest)), 1);
}

TEST_F(RegistryClientTest, AManifestNotMatchingItsDigestIsDataLoss) {
  Descriptor manifest = AddImage("1");
  {
    std::lock_guard lock(mu_);
    manifests_[manifest.digest].second += " ";
  }
  absl::Status status = Client(StrCat("vms/tiny@", manifest.digest)).ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(Message(status), HasSubstr(StrCat("expected digest ", manifest.digest)));
}

TEST_F(RegistryClientTest, AnOciIndexResolvesToTheAmd64Manifest) {
  Descriptor arm = AddImage("", 1, std::string(kOciManifestMediaType), "arm");
  Descriptor amd = AddImage("", 2, std::string(kOciManifestMediaType), "amd");
  json index = {
      {"schemaVersion", 2}, {"mediaType", kOciIndexMediaType}, {"manifests", json::array()}};
  index["manifests"][0] = DescriptorJson(arm);
  index["manifests"][0]["platform"] = {{"os", "linux"}, {"architecture", "arm64"}};
  index["manifests"][1] = DescriptorJson(amd);
  index["manifests"][1]["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  index["manifests"][2] = DescriptorJson(arm);
  index["manifests"][2]["platform"] = {{"os", "unknown"}, {"architecture", "unknown"}};
  Descriptor index_descriptor = AddManifest("multi", index.dump(), std::string(kOciIndexMediaType));

  absl::StatusOr<ResolvedManifest> resolved = Client("vms/tiny:multi").ResolveManifest();
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, index_descriptor.digest);
  EXPECT_EQ(resolved->manifest_digest, amd.digest);
  EXPECT_EQ(Sha256Digest(resolved->raw), amd.digest);
  EXPECT_EQ(resolved->layers.size(), 2u);
}

TEST_F(RegistryClientTest, ADockerManifestListResolvesIgnoringTheVariant) {
  std::string type(kDockerManifestMediaType);
  Descriptor arm = AddImage("", 1, type, "arm");
  Descriptor amd = AddImage("", 3, type, "amd");
  json list = {{"schemaVersion", 2},
               {"mediaType", kDockerManifestListMediaType},
               {"manifests", json::array()}};
  json arm_entry = DescriptorJson(arm);
  arm_entry["platform"] = {{"os", "linux"}, {"architecture", "arm"}, {"variant", "v7"}};
  json amd_entry = DescriptorJson(amd);
  amd_entry["platform"] = {{"os", "linux"}, {"architecture", "amd64"}, {"variant", "v3"}};
  list["manifests"].push_back(arm_entry);
  list["manifests"].push_back(amd_entry);
  // Served with a generic Content-Type: the mediaType field decides.
  Descriptor list_descriptor = AddManifest("1", list.dump(), "application/json");

  absl::StatusOr<ResolvedManifest> resolved = Client("vms/tiny:1").ResolveManifest();
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, list_descriptor.digest);
  EXPECT_EQ(resolved->manifest_digest, amd.digest);
  EXPECT_EQ(resolved->media_type, kDockerManifestMediaType);
  EXPECT_EQ(resolved->layers.size(), 3u);
}

TEST_F(RegistryClientTest, AnIndexWithoutTheplatformIsNotFoundListingThePlatforms) {
  Descriptor arm = AddImage("", 1, std::string(kOciManifestMediaType), "arm");
  json entry = DescriptorJson(arm);
  entry["platform"] = {{"os", "linux"}, {"architecture", "arm64"}};
  json index = {
      {"schemaVersion", 2}, {"mediaType", kOciIndexMediaType}, {"manifests", json::array({entry})}};
  AddManifest("1", index.dump(), std::string(kOciIndexMediaType));
  absl::Status status = Client("vms/tiny:1").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(Message(status), HasSubstr("linux/amd64"));
  EXPECT_THAT(Message(status), HasSubstr("available: linux/arm64"));
}

TEST_F(RegistryClientTest, AChildManifestNotMatchingTheIndexIsDataLoss) {
  Descriptor amd = AddImage("", 1);
  json entry = DescriptorJson(amd);
  entry["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  json index = {
      {"schemaVersion", 2}, {"mediaType", kOciIndexMediaType}, {"manifests", json::array({entry})}};
  AddManifest("1", index.dump(), std::string(kOciIndexMediaType));
  {
    std::lock_guard lock(mu_);
    manifests_[amd.digest].second.append("\n");
  }
  absl::Status status = Client("vms/tiny:1").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(Message(status), HasSubstr(amd.digest));
}

TEST_F(RegistryClientTest, ASchema1ManifestIsRefusedAsUnsupported) {
  json manifest = {
      {"schemaVersion", 1}, {"name", kRepo}, {"tag", "old"}, {"fsLayers", json::array()}};
  AddManifest("old", manifest.dump(), "application/vnd.docker.distribution.manifest.v1+prettyjws");
  absl::Status status = Client("vms/tiny:old").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Message(status), HasSubstr("schema 1"));
  EXPECT_THAT(Message(status), HasSubstr("unsupported"));
}

TEST_F(RegistryClientTest, AManifestWithABadDescriptorIsRefused) {
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifestMediaType},
                   {"config", {{"mediaType", "x"}, {"digest", "sha512:abc"}, {"size", 1}}},
                   {"layers", json::array()}};
  AddManifest("1", manifest.dump(), std::string(kOciManifestMediaType));
  absl::Status status = Client("vms/tiny:1").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Message(status), HasSubstr("config.digest"));

  manifest["config"] = {{"digest", Sha256Digest("x")}, {"size", -1}};
  AddManifest("2", manifest.dump(), std::string(kOciManifestMediaType));
  status = Client("vms/tiny:2").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Message(status), HasSubstr("config.size"));
}

TEST_F(RegistryClientTest, AManifestOver4MiBIsRefused) {
  AddManifest("big", std::string(kMaxManifestSize + 1, ' '), std::string(kOciManifestMediaType));
  absl::Status status = Client("vms/tiny:big").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Message(status), HasSubstr("larger than"));
}

TEST_F(RegistryClientTest, AMissingTagIsNotFound) {
  AddImage("1");
  absl::Status status = Client("vms/tiny:2").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(Message(status),
              HasSubstr(StrCat("image \"", server_->host_port(), "/vms/tiny:2\" not found")));
  EXPECT_THAT(Message(status), HasSubstr("MANIFEST_UNKNOWN"));
}

TEST_F(RegistryClientTest, AnUnknownRepositoryIsNotFound) {
  absl::Status status = Client("vms/other:1").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
}

// --- Authentication -------------------------------------------------------

TEST_F(RegistryClientTest, BearerTokenFlowSendsBasicCredentialsToTheTokenServer) {
  auth_ = Auth::kBearer;
  AddImage("1");
  RegistryClient client = Client("vms/tiny:1", Alice());
  absl::StatusOr<ResolvedManifest> resolved = client.ResolveManifest();
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_TRUE(client.FetchBlob(resolved->config).ok());
  ASSERT_TRUE(
      client.StreamBlob(resolved->layers[0], [](std::string_view) { return absl::OkStatus(); })
          .ok());
  EXPECT_EQ(token_requests_, 1);  // The token is cached for the client.
}

TEST_F(RegistryClientTest, TheAuthFieldIsUsedAsBasicCredentials) {
  auth_ = Auth::kBearer;
  AddImage("1");
  absl::StatusOr<ResolvedManifest> resolved =
      Client("vms/tiny:1", Credentials{.auth = Basic()}).ResolveManifest();
  EXPECT_TRUE(resolved.ok()) << resolved.status();
}

TEST_F(RegistryClientTest, WrongCredentialsAreUnauthenticated) {
  auth_ = Auth::kBearer;
  AddImage("1");
  absl::Status status = Client("vms/tiny:1", Credentials{.username = "alice", .password = "wrong"})
                            .ResolveManifest()
                            .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(Message(status),
              HasSubstr(StrCat("registry ", server_->host_port(),
                               " rejected the credentials for repository vms/tiny")));
}

TEST_F(RegistryClientTest, AnonymousAccessToAPrivateRepositoryIsUnauthenticated) {
  auth_ = Auth::kBasic;
  AddImage("1");
  absl::Status status = Client("vms/tiny:1").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(Message(status), HasSubstr("no credentials were given"));
}

TEST_F(RegistryClientTest, ABasicChallengeGetsBasicCredentials) {
  auth_ = Auth::kBasic;
  AddImage("1");
  absl::StatusOr<ResolvedManifest> resolved = Client("vms/tiny:1", Alice()).ResolveManifest();
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(token_requests_, 0);
}

TEST_F(RegistryClientTest, ARegistryTokenIsSentAsBearerWithoutAChallenge) {
  auth_ = Auth::kBearer;
  AddImage("1");
  absl::StatusOr<ResolvedManifest> resolved =
      Client("vms/tiny:1", Credentials{.registry_token = kToken}).ResolveManifest();
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(token_requests_, 0);
}

TEST_F(RegistryClientTest, ForbiddenIsPermissionDenied) {
  AddImage("1");
  hook_ = [](const Request&, Responder& responder) {
    SendError(responder, 403, "DENIED");
    return true;
  };
  absl::Status status = Client("vms/tiny:1").ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
}

// --- Retries ------------------------------------------------------------

TEST_F(RegistryClientTest, ServiceUnavailableIsRetried) {
  AddImage("1");
  std::atomic<int> failures{0};
  hook_ = [&](const Request&, Responder& responder) {
    if (failures >= 2) return false;
    ++failures;
    responder.Send(503, "busy");
    return true;
  };
  absl::StatusOr<ResolvedManifest> resolved = Client("vms/tiny:1").ResolveManifest();
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(failures, 2);
}

TEST_F(RegistryClientTest, ServiceUnavailableForeverIsUnavailableAfterTheAttempts) {
  AddImage("1");
  hook_ = [](const Request&, Responder& responder) {
    responder.Send(503, "busy");
    return true;
  };
  absl::Status status = Client("vms/tiny:1", {}, {}, 3).ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(Message(status), HasSubstr("HTTP 503"));
  EXPECT_EQ(server_->CountRequests("/v2/vms/tiny/manifests/1"), 3);
}

TEST_F(RegistryClientTest, AnUnreachableRegistryIsUnavailable) {
  std::string host_port;
  {
    auto gone = TestHttpServer::Start([](const Request&, Responder& r) { r.Send(200); });
    ASSERT_TRUE(gone.ok());
    host_port = (*gone)->host_port();
  }
  absl::StatusOr<Reference> ref = ParseReference(StrCat(host_port, "/vms/tiny:1"));
  ASSERT_TRUE(ref.ok());
  RegistryClient client(*ref, RegistrySettings{.plain_http = true}, {},
                        {.attempts = 2, .first_backoff = absl::Milliseconds(1)});
  absl::Status status = client.ResolveManifest().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

// --- Blobs ----------------------------------------------------------------

TEST_F(RegistryClientTest, ABlobRedirectedToAnotherHostGetsNoAuthorization) {
  auth_ = Auth::kBearer;
  std::string content = Pattern(300000);
  Descriptor blob = AddBlob(content);
  std::atomic<int> storage_requests{0};
  std::atomic<bool> storage_saw_authorization{false};
  auto storage = TestHttpServer::Start([&](const Request& request, Responder& responder) {
    ++storage_requests;
    if (request.HasHeader("authorization")) storage_saw_authorization = true;
    responder.Send(200, content);
  });
  ASSERT_TRUE(storage.ok());
  std::string location = StrCat((*storage)->url(), "/bucket/blob?signature=abc");
  // Captures by value: the server's threads may outlive this function's
  // heap-owning locals (the server is a member).
  hook_ = [location, digest = blob.digest](const Request& request, Responder& responder) {
    if (!request.path.ends_with(digest) ||
        request.Header("authorization") != StrCat("Bearer ", kToken)) {
      return false;
    }
    responder.Send(307, "", {{"Location", location}});
    return true;
  };
  std::string received;
  absl::Status status = Client("vms/tiny:1", Alice()).StreamBlob(blob, [&](std::string_view c) {
    received.append(c);
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(received, content);
  EXPECT_EQ(storage_requests, 1);
  EXPECT_FALSE(storage_saw_authorization);
}

// Serves the blob, cutting the first `drops` responses after `cut` bytes of
// the full blob.
class DroppingBlob {
 public:
  DroppingBlob(std::string content, int drops, size_t cut)
      : content_(std::move(content)), drops_(drops), cut_(cut) {}

  bool operator()(const Request& request, Responder& responder) {
    if (request.path.find("/blobs/") == std::string::npos) return false;
    int64_t start = RangeStart(request);
    ranges_.push_back(start);
    std::string_view body = std::string_view(content_).substr(start);
    if (start > 0) {
      responder.Start(206, static_cast<int64_t>(body.size()),
                      {{"Content-Range",
                        StrCat("bytes ", start, "-", content_.size() - 1, "/", content_.size())}});
    } else {
      responder.Start(200, static_cast<int64_t>(body.size()));
    }
    if (drops_ > 0) {
      --drops_;
      size_t keep = cut_ > static_cast<size_t>(start) ? cut_ - start : 0;
      responder.Write(body.substr(0, std::min(keep, body.size())));
      responder.Drop();
      return true;
    }
    for (size_t i = 0; i < body.size(); i += 10000) responder.Write(body.substr(i, 10000));
    return true;
  }

  std::vector<int64_t> ranges_;  // Range starts asked for, in order.

 private:
  std::string content_;
  int drops_;
  size_t cut_;
};

TEST_F(RegistryClientTest, ABlobIsResumedWithARangeAfterADroppedConnection) {
  std::string content = Pattern(200000);
  Descriptor blob = AddBlob(content);
  auto dropping = std::make_shared<DroppingBlob>(content, 1, 70000);
  hook_ = [dropping](const Request& r, Responder& s) { return (*dropping)(r, s); };
  std::string received;
  int64_t last_progress = 0;
  absl::Status status = Client("vms/tiny:1")
                            .StreamBlob(
                                blob,
                                [&](std::string_view chunk) {
                                  received.append(chunk);
                                  return absl::OkStatus();
                                },
                                [&](int64_t done, int64_t total) {
                                  EXPECT_EQ(total, blob.size);
                                  EXPECT_GE(done, last_progress);
                                  last_progress = done;
                                });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(received, content);  // Every byte once, in order.
  EXPECT_EQ(last_progress, blob.size);
  EXPECT_EQ(dropping->ranges_, (std::vector<int64_t>{0, 70000}));
}

TEST_F(RegistryClientTest, AResumeAnsweredWith200SkipsTheBytesAlreadyDelivered) {
  std::string content = Pattern(150000);
  Descriptor blob = AddBlob(content);
  std::atomic<int> calls{0};
  hook_ = [&calls, content, digest = blob.digest](const Request& request, Responder& responder) {
    if (!request.path.ends_with(digest)) return false;
    responder.Start(200, static_cast<int64_t>(content.size()));  // Ignores Range.
    if (calls++ == 0) {
      responder.Write(std::string_view(content).substr(0, 50000));
      responder.Drop();
    } else {
      responder.Write(content);
    }
    return true;
  };
  std::string received;
  absl::Status status = Client("vms/tiny:1").StreamBlob(blob, [&](std::string_view chunk) {
    received.append(chunk);
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(received, content);
}

TEST_F(RegistryClientTest, ABlobDroppedEveryTimeIsUnavailable) {
  std::string content = Pattern(100000);
  Descriptor blob = AddBlob(content);
  auto dropping = std::make_shared<DroppingBlob>(content, 1000, 30000);
  hook_ = [dropping](const Request& r, Responder& s) { return (*dropping)(r, s); };
  std::string received;
  absl::Status status = Client("vms/tiny:1").StreamBlob(blob, [&](std::string_view chunk) {
    received.append(chunk);
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(received, content.substr(0, 30000));
  EXPECT_EQ(dropping->ranges_.size(), 4u);
}

TEST_F(RegistryClientTest, ACorruptedBlobIsDataLossNamingBothDigests) {
  std::string content = Pattern(5000);
  Descriptor blob = AddBlob(content);
  std::string corrupted = content;
  corrupted[100] ^= 1;
  {
    std::lock_guard lock(mu_);
    blobs_[blob.digest] = corrupted;
  }
  absl::Status status =
      Client("vms/tiny:1").StreamBlob(blob, [](std::string_view) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(Message(status), HasSubstr(StrCat("expected digest ", blob.digest)));
  EXPECT_THAT(Message(status), HasSubstr(StrCat("got ", Sha256Digest(corrupted))));
}

TEST_F(RegistryClientTest, ABlobLongerThanItsDescriptorIsDataLoss) {
  Descriptor blob = AddBlob(Pattern(5000));
  blob.size = 4000;
  absl::Status status =
      Client("vms/tiny:1").StreamBlob(blob, [](std::string_view) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
}

TEST_F(RegistryClientTest, ABlobShorterThanItsDescriptorIsDataLoss) {
  Descriptor blob = AddBlob(Pattern(5000));
  blob.size = 6000;
  absl::Status status =
      Client("vms/tiny:1").StreamBlob(blob, [](std::string_view) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
}

TEST_F(RegistryClientTest, AMissingBlobIsNotFound) {
  Descriptor blob{.digest = Sha256Digest("nothing"), .size = 7};
  absl::Status status =
      Client("vms/tiny:1").StreamBlob(blob, [](std::string_view) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(Message(status), HasSubstr("BLOB_UNKNOWN"));
}

TEST_F(RegistryClientTest, ASinkErrorStopsTheDownloadWithoutRetries) {
  Descriptor blob = AddBlob(Pattern(5000));
  absl::Status status = Client("vms/tiny:1").StreamBlob(blob, [](std::string_view) {
    return absl::UnavailableError("disk went away");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(Message(status), HasSubstr("disk went away"));
  EXPECT_EQ(server_->CountRequests(StrCat("/v2/vms/tiny/blobs/", blob.digest)), 1);
}

TEST_F(RegistryClientTest, FetchBlobRefusesABlobOverTheLimit) {
  Descriptor blob = AddBlob(Pattern(5000));
  absl::Status status = Client("vms/tiny:1").FetchBlob(blob, 1000).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
}

// --- Mirrors ------------------------------------------------------------

TEST_F(RegistryClientTest, AMirrorIsUsedFirst) {
  Descriptor manifest = AddImage("1");
  // The mirror serves what the registry serves, through the same handler.
  auto mirror = TestHttpServer::Start(
      [this](const Request& request, Responder& responder) { Handle(request, responder); });
  ASSERT_TRUE(mirror.ok());
  RegistryClient client = Client("vms/tiny:1", {}, RegistrySettings{.mirrors = {(*mirror)->url()}});
  absl::StatusOr<ResolvedManifest> resolved = client.ResolveManifest();
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, manifest.digest);
  ASSERT_TRUE(client.FetchBlob(resolved->config).ok());
  EXPECT_EQ(server_->requests().size(), 0u);
  EXPECT_EQ((*mirror)->requests().size(), 2u);
}

TEST_F(RegistryClientTest, AFailingMirrorFallsThroughToTheRegistry) {
  Descriptor manifest = AddImage("1");
  auto empty_mirror = TestHttpServer::Start(
      [](const Request&, Responder& responder) { SendError(responder, 404, "MANIFEST_UNKNOWN"); });
  ASSERT_TRUE(empty_mirror.ok());
  std::string gone_mirror;
  {
    auto gone = TestHttpServer::Start([](const Request&, Responder& r) { r.Send(200); });
    ASSERT_TRUE(gone.ok());
    gone_mirror = (*gone)->host_port();  // Without a scheme: the registry's (http).
  }
  RegistryClient client =
      Client("vms/tiny:1", {}, RegistrySettings{.mirrors = {gone_mirror, (*empty_mirror)->url()}});
  absl::StatusOr<ResolvedManifest> resolved = client.ResolveManifest();
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, manifest.digest);
  ASSERT_TRUE(client.FetchBlob(resolved->config).ok());
  EXPECT_EQ((*empty_mirror)->requests().size(), 2u);
  EXPECT_EQ(server_->requests().size(), 2u);
}

// --- HttpFetch ------------------------------------------------------------

TEST_F(RegistryClientTest, HttpFetchReportsTheStatusHeadersAndBody) {
  AddImage("1");
  absl::StatusOr<HttpResponse> response =
      HttpFetch({.url = StrCat(server_->url(), "/v2/vms/tiny/manifests/missing")});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->headers["content-type"], "application/json");
  EXPECT_THAT(response->body, HasSubstr("MANIFEST_UNKNOWN"));
}

TEST_F(RegistryClientTest, HttpFetchRefusesAnOversizedBodyWithoutASink) {
  AddBlob(Pattern(5000));
  Descriptor blob = AddBlob(Pattern(5000));
  absl::StatusOr<HttpResponse> response =
      HttpFetch({.url = StrCat(server_->url(), "/v2/vms/tiny/blobs/", blob.digest)}, nullptr, 100);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted) << response.status();
}

TEST_F(RegistryClientTest, HttpFetchRefusesANonHttpUrl) {
  absl::StatusOr<HttpResponse> response = HttpFetch({.url = "file:///etc/passwd"});
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
}

// --- TLS ------------------------------------------------------------------

class TlsTest : public RegistryClientTest {
 protected:
  void SetUp() override {
    RegistryClientTest::SetUp();
    for (const char* name : {"server", "client"}) {
      absl::Status made = vmlet::testing::MakeSelfSignedCertificate(
          StrCat(dir_.path(), "/", name, ".pem"), StrCat(dir_.path(), "/", name, ".key"));
      if (!made.ok()) GTEST_SKIP() << "cannot make a test certificate: " << made;
    }
  }

  std::unique_ptr<TestHttpServer> StartTls(vmlet::testing::TestTlsOptions options = {}) {
    options.cert_file = Path("server.pem");
    options.key_file = Path("server.key");
    auto server = TestHttpServer::Start(
        [this](const Request& request, Responder& responder) { Handle(request, responder); },
        options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(server).value() : nullptr;
  }

  std::string Path(const std::string& name) const { return StrCat(dir_.path(), "/", name); }

  vmlet::testing::TempDir dir_;
};

TEST_F(TlsTest, AnUntrustedCertificateIsUnavailableNamingTheSettings) {
  std::unique_ptr<TestHttpServer> server = StartTls();
  ASSERT_NE(server, nullptr);
  absl::StatusOr<HttpResponse> response = HttpFetch({.url = server->url() + "/v2/"});
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_THAT(Message(response.status()), HasSubstr("TLS certificate verification"));
  EXPECT_THAT(Message(response.status()), HasSubstr("ca_file"));
  EXPECT_THAT(Message(response.status()), HasSubstr("insecure_skip_verify"));
}

TEST_F(TlsTest, ACaFileOrInsecureSkipVerifyMakesTheCertificateAcceptable) {
  std::unique_ptr<TestHttpServer> server = StartTls();
  ASSERT_NE(server, nullptr);
  absl::StatusOr<HttpResponse> response =
      HttpFetch({.url = server->url() + "/v2/", .tls = {.ca_file = Path("server.pem")}});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  response = HttpFetch({.url = server->url() + "/v2/", .tls = {.insecure_skip_verify = true}});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
}

TEST_F(TlsTest, AMissingCaFileIsFailedPrecondition) {
  std::unique_ptr<TestHttpServer> server = StartTls();
  ASSERT_NE(server, nullptr);
  absl::StatusOr<HttpResponse> response =
      HttpFetch({.url = server->url() + "/v2/", .tls = {.ca_file = Path("missing.pem")}});
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition) << response.status();
  EXPECT_THAT(Message(response.status()), HasSubstr("missing.pem"));
}

TEST_F(TlsTest, AClientCertificateIsPresentedWhenConfigured) {
  std::unique_ptr<TestHttpServer> server = StartTls({.client_ca_file = Path("client.pem")});
  ASSERT_NE(server, nullptr);
  TlsSettings tls{.ca_file = Path("server.pem"),
                  .cert_file = Path("client.pem"),
                  .key_file = Path("client.key")};
  absl::StatusOr<HttpResponse> response = HttpFetch({.url = server->url() + "/v2/", .tls = tls});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  response = HttpFetch({.url = server->url() + "/v2/", .tls = {.ca_file = Path("server.pem")}});
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
}

TEST_F(TlsTest, TheRegistryClientUsesHttpsWithTheRegistrysTlsSettings) {
  std::unique_ptr<TestHttpServer> server = StartTls();
  ASSERT_NE(server, nullptr);
  Descriptor manifest = AddImage("1");
  absl::StatusOr<Reference> ref = ParseReference(StrCat(server->host_port(), "/vms/tiny:1"));
  ASSERT_TRUE(ref.ok());
  RegistryClient client(*ref, RegistrySettings{.tls = {.ca_file = Path("server.pem")}}, {},
                        {.first_backoff = absl::Milliseconds(1)});
  absl::StatusOr<ResolvedManifest> resolved = client.ResolveManifest();
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, manifest.digest);
  EXPECT_TRUE(client.FetchBlob(resolved->config).ok());
}

}  // namespace
}  // namespace vmlet::image

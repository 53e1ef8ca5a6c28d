// End-to-end image tests: a real registry (Debian's docker-registry on
// 127.0.0.1, tests/image/registry.sh) holding the images that
// tests/image/build-test-images.sh makes from Debian packages, and a real
// vmletd pulling them through its CRI socket. A fault-injecting front
// (TestHttpServer proxying to the registry) adds token auth, corrupted
// blobs, dropped connections and slow transfers.
//
// Two meson tests run this program: e2e_image_pull (fake VM driver) and
// e2e_image_boot (--gtest_filter=*Boot*, real VMs under libvirt + TCG). The
// program exits 77 when the tools are missing, and when every test it ran
// skipped itself (no libvirtd).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/str_util.h"
#include "image/http_client.h"
#include "tests/e2e/vmletd_process.h"
#include "tests/image/test_http_server.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::TestHttpServer;

std::string g_registry;    // "127.0.0.1:PORT" of the real registry.
std::string g_images_dir;  // Output of build-test-images.sh.

std::string Ref(std::string_view host, std::string_view name) {
  return StrCat(host, "/vmlet-test/", name);
}

// What the front does to the traffic it forwards.
enum class Fault { kNone, kToken, kCorruptBlobs, kDropBlobsOnce, kDropBlobsAlways, kSlowBlobs };

// A proxy in front of the real registry.
class RegistryFront {
 public:
  explicit RegistryFront(Fault fault) : fault_(fault) {
    auto server = TestHttpServer::Start(
        [this](const TestHttpServer::Request& request, TestHttpServer::Responder& responder) {
          Handle(request, responder);
        });
    EXPECT_TRUE(server.ok()) << server.status();
    if (server.ok()) server_ = *std::move(server);
  }

  std::string host() const { return server_ ? server_->host_port() : "127.0.0.1:1"; }
  int BlobRequests() const {
    int count = 0;
    for (const auto& request : server_->requests()) {
      if (request.path.find("/blobs/") != std::string::npos) ++count;
    }
    return count;
  }
  int token_requests() const { return token_requests_; }

 private:
  void Handle(const TestHttpServer::Request& request, TestHttpServer::Responder& responder) {
    if (fault_ == Fault::kToken) {
      if (request.path == "/token") {
        ++token_requests_;
        // "vmlet:secret", as a kubelet sends imagePullSecrets.
        if (request.Header("authorization") != "Basic dm1sZXQ6c2VjcmV0" ||
            request.Param("service") != "vmlet-test" ||
            request.Param("scope").find(":pull") == std::string::npos) {
          return responder.Send(401, R"({"errors":[{"code":"UNAUTHORIZED"}]})");
        }
        return responder.Send(200, R"({"token":"good-token","expires_in":300})",
                              {{"Content-Type", "application/json"}});
      }
      if (request.Header("authorization") != "Bearer good-token") {
        std::string repo = request.path.substr(4, request.path.find("/manifests/") - 4);
        if (repo.find("/blobs/") != std::string::npos) repo = repo.substr(0, repo.find("/blobs/"));
        return responder.Send(
            401, R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
            {{"WWW-Authenticate",
              StrCat("Bearer realm=\"", server_->url(),
                     "/token\",service=\"vmlet-test\",scope=\"repository:", repo, ":pull\"")},
             {"Content-Type", "application/json"}});
      }
    }
    std::vector<std::string> headers;
    for (const char* name : {"accept", "range"}) {
      if (request.HasHeader(name)) headers.push_back(StrCat(name, ": ", request.Header(name)));
    }
    absl::StatusOr<image::HttpResponse> upstream =
        image::HttpFetch({.method = request.method,
                          .url = StrCat("http://", g_registry, request.target),
                          .headers = headers},
                         nullptr, 512 << 20);
    if (!upstream.ok()) return responder.Send(502, std::string(upstream.status().message()));
    TestHttpServer::Headers out;
    for (const char* name : {"content-type", "docker-content-digest", "content-range",
                             "docker-distribution-api-version", "www-authenticate"}) {
      if (auto it = upstream->headers.find(name); it != upstream->headers.end()) {
        out.emplace_back(name, it->second);
      }
    }
    std::string body = upstream->body;
    const bool blob = request.path.find("/blobs/") != std::string::npos &&
                      upstream->status / 100 == 2 && body.size() > 1024;
    if (blob && fault_ == Fault::kCorruptBlobs) body.back() ^= 0x5a;
    bool drop = false;
    if (blob && fault_ == Fault::kDropBlobsAlways) drop = true;
    if (blob && fault_ == Fault::kDropBlobsOnce && !request.HasHeader("range")) {
      std::lock_guard lock(mu_);
      drop = dropped_.insert(request.path).second;
    }
    if (drop) {
      responder.Start(static_cast<int>(upstream->status), static_cast<int64_t>(body.size()), out);
      responder.Write(std::string_view(body).substr(0, body.size() / 2));
      return responder.Drop();
    }
    if (blob && fault_ == Fault::kSlowBlobs) {
      responder.Start(static_cast<int>(upstream->status), static_cast<int64_t>(body.size()), out);
      for (size_t at = 0; at < body.size(); at += 64 << 10) {
        if (!responder.Write(std::string_view(body).substr(at, 64 << 10))) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      return;
    }
    responder.Send(static_cast<int>(upstream->status), body, out);
  }

  const Fault fault_;
  std::unique_ptr<TestHttpServer> server_;
  std::atomic<int> token_requests_{0};
  std::mutex mu_;
  std::set<std::string> dropped_;
};

std::string RegistriesYaml(const std::vector<std::string>& hosts) {
  std::string yaml = "registries:\n";
  for (const std::string& host : hosts) StrAppend(&yaml, "  \"", host, "\":\n    insecure: true\n");
  return yaml;
}

class ImagePullTest : public ::testing::Test {
 protected:
  void StartVmletd(const std::string& extra_yaml) {
    vmletd_ = std::make_unique<VmletdProcess>(extra_yaml);
    ASSERT_TRUE(vmletd_->init_status().ok()) << vmletd_->init_status();
    absl::Status started = vmletd_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void TearDown() override {
    if (HasFailure() && vmletd_) {
      std::fprintf(stderr, "---- vmletd log ----\n%s---- end ----\n", vmletd_->Log().c_str());
    }
  }

  grpc::Status Pull(const std::string& image, std::string* id = nullptr,
                    const v1::AuthConfig* auth = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(3));
    v1::PullImageRequest request;
    request.mutable_image()->set_image(image);
    if (auth != nullptr) *request.mutable_auth() = *auth;
    v1::PullImageResponse response;
    grpc::Status status = vmletd_->image().PullImage(&context, request, &response);
    if (id != nullptr) *id = response.image_ref();
    return status;
  }

  // The image ImageStatus reports, or nullopt when it says "absent".
  std::optional<v1::Image> Status(const std::string& image, std::string* info = nullptr) {
    grpc::ClientContext context;
    v1::ImageStatusRequest request;
    request.mutable_image()->set_image(image);
    request.set_verbose(info != nullptr);
    v1::ImageStatusResponse response;
    grpc::Status status = vmletd_->image().ImageStatus(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (info != nullptr) *info = response.info().count("info") ? response.info().at("info") : "";
    if (!response.has_image()) return std::nullopt;
    return response.image();
  }

  std::vector<v1::Image> List() {
    grpc::ClientContext context;
    v1::ListImagesResponse response;
    grpc::Status status = vmletd_->image().ListImages(&context, v1::ListImagesRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.images().begin(), response.images().end()};
  }

  grpc::Status Remove(const std::string& image) {
    grpc::ClientContext context;
    v1::RemoveImageRequest request;
    request.mutable_image()->set_image(image);
    v1::RemoveImageResponse response;
    return vmletd_->image().RemoveImage(&context, request, &response);
  }

  // The stored images' directories, and leftovers of pulls.
  std::vector<std::string> StoredDirs() {
    auto dirs = ListDirectory(vmletd_->state_dir() + "/images/sha256");
    return dirs.ok() ? *dirs : std::vector<std::string>{"<unreadable>"};
  }
  std::vector<std::string> TmpDirs() {
    auto dirs = ListDirectory(vmletd_->state_dir() + "/images/tmp");
    return dirs.ok() ? *dirs : std::vector<std::string>{"<unreadable>"};
  }

  // A pod with one container from `image`: the container id, or the error.
  grpc::Status CreateContainer(const std::string& image, std::string* id) {
    grpc::ClientContext context;
    v1::RunPodSandboxRequest run;
    v1::PodSandboxConfig* config = run.mutable_config();
    config->mutable_metadata()->set_name(StrCat("pod-", GenerateId().substr(0, 6)));
    config->mutable_metadata()->set_namespace_("e2e");
    config->mutable_metadata()->set_uid(GenerateId().substr(0, 16));
    v1::RunPodSandboxResponse ran;
    grpc::Status status = vmletd_->runtime().RunPodSandbox(&context, run, &ran);
    if (!status.ok()) return status;
    grpc::ClientContext create_context;
    v1::CreateContainerRequest create;
    create.set_pod_sandbox_id(ran.pod_sandbox_id());
    *create.mutable_sandbox_config() = *config;
    create.mutable_config()->mutable_metadata()->set_name("vm");
    create.mutable_config()->mutable_image()->set_image(image);
    v1::CreateContainerResponse created;
    status = vmletd_->runtime().CreateContainer(&create_context, create, &created);
    *id = created.container_id();
    return status;
  }

  std::unique_ptr<VmletdProcess> vmletd_;
};

TEST_F(ImagePullTest, PullsByTagAndDigestAndServesStatusListAndRemove) {
  StartVmletd(RegistriesYaml({g_registry}));
  const std::string tag = Ref(g_registry, "kernel:1");
  std::string id;
  grpc::Status pulled = Pull(tag, &id);
  ASSERT_TRUE(pulled.ok()) << pulled.error_message();
  EXPECT_THAT(id, ::testing::StartsWith("sha256:"));

  std::optional<v1::Image> image = Status(tag);
  ASSERT_TRUE(image.has_value());
  EXPECT_EQ(image->id(), id);
  EXPECT_THAT(image->repo_tags(), ::testing::ElementsAre(tag));
  ASSERT_EQ(image->repo_digests_size(), 1);
  const std::string by_digest = image->repo_digests(0);
  EXPECT_THAT(by_digest, ::testing::StartsWith(Ref(g_registry, "kernel@sha256:")));
  EXPECT_GT(image->size(), 1u << 20);
  // By id, by the id's hex and by digest: the same image.
  EXPECT_EQ(Status(id)->id(), id);
  EXPECT_EQ(Status(id.substr(7))->id(), id);
  EXPECT_EQ(Status(by_digest)->id(), id);
  std::string info;
  Status(tag, &info);
  EXPECT_THAT(info, HasSubstr("\"layout\":\"kernel\""));
  EXPECT_THAT(info, HasSubstr("\"source\":\"registry\""));

  std::vector<v1::Image> listed = List();
  EXPECT_EQ(
      std::count_if(listed.begin(), listed.end(), [&](const v1::Image& i) { return i.id() == id; }),
      1);
  {
    grpc::ClientContext context;
    v1::ImageFsInfoResponse fs;
    ASSERT_TRUE(vmletd_->image().ImageFsInfo(&context, v1::ImageFsInfoRequest(), &fs).ok());
    ASSERT_EQ(fs.image_filesystems_size(), 1);
    EXPECT_GE(fs.image_filesystems(0).used_bytes().value(), image->size());
    EXPECT_GT(fs.image_filesystems(0).inodes_used().value(), 3u);
  }
  // Files of the store are read-only.
  struct stat st;
  ASSERT_EQ(
      ::stat(StrCat(vmletd_->state_dir(), "/images/sha256/", id.substr(7), "/rootfs/boot/vmlinuz")
                 .c_str(),
             &st),
      0);
  EXPECT_EQ(st.st_mode & 0222, 0u);

  // The image survives a restart of vmletd.
  ASSERT_TRUE(vmletd_->Restart().ok());
  ASSERT_TRUE(Status(tag).has_value());

  ASSERT_TRUE(Remove(tag).ok());
  EXPECT_FALSE(Status(tag).has_value());
  EXPECT_FALSE(Status(id).has_value());
  EXPECT_THAT(StoredDirs(), IsEmpty());
  EXPECT_TRUE(Remove(tag).ok()) << "removing an absent image succeeds";

  // By digest: stored with its repo digest and no tag.
  ASSERT_TRUE(Pull(by_digest, &id).ok());
  image = Status(by_digest);
  ASSERT_TRUE(image.has_value());
  EXPECT_THAT(image->repo_tags(), IsEmpty());
  EXPECT_THAT(image->repo_digests(), ::testing::ElementsAre(by_digest));
  // A second pull by tag only adds the tag.
  ASSERT_TRUE(Pull(tag).ok());
  EXPECT_THAT(Status(by_digest)->repo_tags(), ::testing::ElementsAre(tag));
  EXPECT_EQ(StoredDirs().size(), 1u);
  EXPECT_THAT(TmpDirs(), IsEmpty());
}

TEST_F(ImagePullTest, KeepsContainerImagesButRefusesToBootThem) {
  StartVmletd(RegistriesYaml({g_registry}));
  const std::string numeric = Ref(g_registry, "container:1");
  const std::string named = Ref(g_registry, "container:named-user");
  ASSERT_TRUE(Pull(numeric).ok());
  ASSERT_TRUE(Pull(named).ok());
  std::optional<v1::Image> image = Status(numeric);
  ASSERT_TRUE(image.has_value());
  EXPECT_EQ(image->uid().value(), 1000);
  EXPECT_EQ(image->username(), "");
  image = Status(named);
  ASSERT_TRUE(image.has_value());
  EXPECT_FALSE(image->has_uid());
  EXPECT_EQ(image->username(), "daemon");
  std::string info;
  Status(numeric, &info);
  EXPECT_THAT(info, HasSubstr("\"layout\":\"container\""));
  EXPECT_THAT(info, HasSubstr("\"working_dir\""));

  std::string id;
  grpc::Status created = CreateContainer(numeric, &id);
  EXPECT_EQ(created.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(created.error_message(), HasSubstr("disk/"));
  EXPECT_THAT(created.error_message(), HasSubstr("boot/vmlinuz"));
}

TEST_F(ImagePullTest, MissingTagIsNotFound) {
  StartVmletd(RegistriesYaml({g_registry}));
  grpc::Status status = Pull(Ref(g_registry, "kernel:no-such-tag"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("kernel:no-such-tag"));
  status = Pull(Ref(g_registry, "no-such-repo:1"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_THAT(StoredDirs(), IsEmpty());
}

TEST_F(ImagePullTest, RefusesLayersThatEscapeTheImage) {
  StartVmletd(RegistriesYaml({g_registry}));
  for (const char* name : {"escape:1", "escape:2"}) {
    grpc::Status status = Pull(Ref(g_registry, name));
    EXPECT_FALSE(status.ok()) << name;
    EXPECT_TRUE(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                status.error_code() == grpc::StatusCode::FAILED_PRECONDITION)
        << name << ": " << status.error_message();
    EXPECT_FALSE(Status(Ref(g_registry, name)).has_value());
  }
  EXPECT_THAT(StoredDirs(), IsEmpty());
  EXPECT_THAT(TmpDirs(), IsEmpty());
  EXPECT_NE(::access(StrCat(vmletd_->state_dir(), "/images/escaped").c_str(), F_OK), 0);
}

TEST_F(ImagePullTest, TokenAuthWithPullSecrets) {
  RegistryFront front(Fault::kToken);
  StartVmletd(RegistriesYaml({front.host()}));
  const std::string ref = Ref(front.host(), "kernel:1");
  grpc::Status status = Pull(ref);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  v1::AuthConfig auth;
  auth.set_username("vmlet");
  auth.set_password("wrong");
  status = Pull(ref, nullptr, &auth);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  auth.set_password("secret");
  status = Pull(ref, nullptr, &auth);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GE(front.token_requests(), 3);
  EXPECT_TRUE(Status(ref).has_value());
}

TEST_F(ImagePullTest, CorruptedBlobIsRefusedAndNothingIsStored) {
  RegistryFront front(Fault::kCorruptBlobs);
  StartVmletd(RegistriesYaml({front.host()}));
  grpc::Status status = Pull(Ref(front.host(), "kernel:1"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("sha256:"));
  EXPECT_THAT(StoredDirs(), IsEmpty());
  EXPECT_THAT(TmpDirs(), IsEmpty());
  EXPECT_THAT(List(), ::testing::SizeIs(1)) << "only the fake driver's local image";
}

TEST_F(ImagePullTest, ResumesABlobAfterADroppedConnection) {
  RegistryFront front(Fault::kDropBlobsOnce);
  StartVmletd(RegistriesYaml({front.host()}));
  const std::string ref = Ref(front.host(), "kernel:1");
  grpc::Status status = Pull(ref);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(Status(ref).has_value());
}

TEST_F(ImagePullTest, ARegistryThatAlwaysDisconnectsFailsCleanly) {
  RegistryFront front(Fault::kDropBlobsAlways);
  StartVmletd(RegistriesYaml({front.host()}));
  grpc::Status status = Pull(Ref(front.host(), "kernel:1"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(StoredDirs(), IsEmpty());
  EXPECT_THAT(TmpDirs(), IsEmpty());
}

TEST_F(ImagePullTest, ConcurrentPullsShareOneDownload) {
  RegistryFront front(Fault::kSlowBlobs);
  StartVmletd(RegistriesYaml({front.host()}));
  const std::string ref = Ref(front.host(), "kernel:1");
  std::vector<std::future<std::pair<grpc::Status, std::string>>> pulls;
  for (int i = 0; i < 4; ++i) {
    pulls.push_back(std::async(std::launch::async, [&] {
      std::string id;
      grpc::Status status = Pull(ref, &id);
      return std::make_pair(status, id);
    }));
  }
  std::set<std::string> ids;
  for (auto& pull : pulls) {
    auto [status, id] = pull.get();
    EXPECT_TRUE(status.ok()) << status.error_message();
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1u);
  // One config blob and each layer once (kernel:1 has two layers).
  EXPECT_EQ(front.BlobRequests(), 3);
}

TEST_F(ImagePullTest, APullKilledMidwayLeavesNothingAfterRestart) {
  RegistryFront front(Fault::kSlowBlobs);
  StartVmletd(RegistriesYaml({front.host()}));
  const std::string ref = Ref(front.host(), "kernel:1");
  std::thread pull([&] { (void)Pull(ref); });
  // Kill vmletd while the (slow) layers stream into tmp/.
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (TmpDirs().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_THAT(TmpDirs(), ::testing::Not(IsEmpty())) << "the pull never started";
  ASSERT_TRUE(vmletd_->Kill().ok());
  pull.join();
  ASSERT_TRUE(vmletd_->Start().ok());
  EXPECT_THAT(TmpDirs(), IsEmpty());
  EXPECT_THAT(StoredDirs(), IsEmpty());
  EXPECT_FALSE(Status(ref).has_value());
}

TEST_F(ImagePullTest, AnImageInUseIsKeptUntilItsContainerIsRemoved) {
  StartVmletd(RegistriesYaml({g_registry}));
  const std::string ref = Ref(g_registry, "kernel:1");
  std::string image_id;
  ASSERT_TRUE(Pull(ref, &image_id).ok());
  std::string container;
  grpc::Status created = CreateContainer(ref, &container);
  ASSERT_TRUE(created.ok()) << created.error_message();
  ASSERT_TRUE(Remove(image_id).ok());
  EXPECT_FALSE(Status(ref).has_value());
  EXPECT_THAT(StoredDirs(), ::testing::SizeIs(1)) << "still used by " << container;
  // Also across a restart.
  ASSERT_TRUE(vmletd_->Restart().ok());
  EXPECT_THAT(StoredDirs(), ::testing::SizeIs(1));
  grpc::ClientContext context;
  v1::RemoveContainerRequest remove;
  remove.set_container_id(container);
  v1::RemoveContainerResponse removed;
  ASSERT_TRUE(vmletd_->runtime().RemoveContainer(&context, remove, &removed).ok());
  EXPECT_THAT(StoredDirs(), IsEmpty());
}

TEST_F(ImagePullTest, TranslationRulesPullDisksOverHttp) {
  // A qcow2 disk served by a plain web server.
  const std::string disk = StrCat(g_images_dir, "/http-disk.qcow2");
  auto made = RunCommand({"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", disk, "32M"});
  ASSERT_TRUE(made.ok() && made->code == 0);
  absl::StatusOr<std::string> bytes = ReadFile(disk);
  ASSERT_TRUE(bytes.ok());
  auto web = TestHttpServer::Start(
      [&](const TestHttpServer::Request& request, TestHttpServer::Responder& responder) {
        if (request.path == "/images/cirros-0.6.qcow2") return responder.Send(200, *bytes);
        responder.Send(404, "not found");
      });
  ASSERT_TRUE(web.ok());
  StartVmletd(StrCat("image_translations:\n", "  - regex: 'cloud/(.*)'\n",
                     "    url: ", (*web)->url(), "/images/$1.qcow2\n"));
  std::string id;
  grpc::Status status = Pull("cloud/cirros-0.6", &id);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::string info;
  std::optional<v1::Image> image = Status("cloud/cirros-0.6", &info);
  ASSERT_TRUE(image.has_value());
  EXPECT_EQ(image->id(), id);
  EXPECT_THAT(info, HasSubstr("\"layout\":\"disk\""));
  EXPECT_THAT(info, HasSubstr("\"source\":\"http\""));
  std::string container;
  EXPECT_TRUE(CreateContainer("cloud/cirros-0.6", &container).ok());
  status = Pull("cloud/missing");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  (void)RemoveFileIfExists(disk);
}

// Real VMs from pulled images: libvirtd + QEMU (TCG). Skipped without
// libvirtd.
class ImageBootTest : public ImagePullTest {
 protected:
  void SetUp() override {
    auto version = RunCommand({"/usr/bin/virsh", "-c", "qemu:///system", "version"});
    if (!version.ok() || version->code != 0) GTEST_SKIP() << "libvirtd is not reachable";
    vmletd_ = std::make_unique<VmletdProcess>(
        StrCat("vm_driver: libvirt\nlibvirt_uri: qemu:///system\naccelerator: tcg\n",
               RegistriesYaml({g_registry})),
        /*fake_driver=*/false);
    ASSERT_TRUE(vmletd_->init_status().ok()) << vmletd_->init_status();
    // QEMU runs as libvirt's own user: it must reach the per-VM files.
    ASSERT_EQ(::chmod(vmletd_->dir().c_str(), 0711), 0);
    absl::Status started = vmletd_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void TearDown() override {
    if (vmletd_ && vmletd_->running()) {
      for (const std::string& id : sandboxes_) {
        grpc::ClientContext context;
        v1::RemovePodSandboxRequest request;
        request.set_pod_sandbox_id(id);
        v1::RemovePodSandboxResponse response;
        EXPECT_TRUE(vmletd_->runtime().RemovePodSandbox(&context, request, &response).ok());
      }
    }
    ImagePullTest::TearDown();
  }

  // Runs a pod from `image` and returns its console log's path.
  std::string RunVm(const std::string& name, const std::string& image) {
    v1::PodSandboxConfig config;
    config.mutable_metadata()->set_name(name);
    config.mutable_metadata()->set_namespace_("e2e-image");
    config.mutable_metadata()->set_uid(GenerateId().substr(0, 16));
    config.set_log_directory(StrCat(vmletd_->dir(), "/logs/", name));
    grpc::ClientContext run_context;
    v1::RunPodSandboxRequest run;
    *run.mutable_config() = config;
    v1::RunPodSandboxResponse ran;
    grpc::Status status = vmletd_->runtime().RunPodSandbox(&run_context, run, &ran);
    EXPECT_TRUE(status.ok()) << status.error_message();
    sandboxes_.push_back(ran.pod_sandbox_id());
    grpc::ClientContext create_context;
    v1::CreateContainerRequest create;
    create.set_pod_sandbox_id(ran.pod_sandbox_id());
    *create.mutable_sandbox_config() = config;
    create.mutable_config()->mutable_metadata()->set_name("vm");
    create.mutable_config()->mutable_image()->set_image(image);
    create.mutable_config()->set_log_path("vm/0.log");
    create.mutable_config()->mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(256
                                                                                             << 20);
    v1::CreateContainerResponse created;
    status = vmletd_->runtime().CreateContainer(&create_context, create, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    grpc::ClientContext start_context;
    v1::StartContainerRequest start;
    start.set_container_id(created.container_id());
    v1::StartContainerResponse started;
    status = vmletd_->runtime().StartContainer(&start_context, start, &started);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return StrCat(vmletd_->dir(), "/logs/", name, "/vm/0.log");
  }

  static bool WaitForMarker(const std::string& log) {
    absl::Time deadline = absl::Now() + absl::Seconds(180);
    while (absl::Now() < deadline) {
      absl::StatusOr<std::string> text = ReadFile(log);
      if (text.ok() && text->find("VMLET-GUEST-READY") != std::string::npos) return true;
      absl::SleepFor(absl::Milliseconds(250));
    }
    return false;
  }

  std::vector<std::string> sandboxes_;
};

TEST_F(ImageBootTest, BootsVmsFromPulledDiskAndKernelImages) {
  // The kernel image by its id, as the kubelet names it in CreateContainer.
  std::string kernel_id;
  ASSERT_TRUE(Pull(Ref(g_registry, "kernel:1"), &kernel_id).ok());
  std::string disk_id;
  ASSERT_TRUE(Pull(Ref(g_registry, "disk:1"), &disk_id).ok());
  const std::string kernel_log = RunVm("kernel", kernel_id);
  const std::string disk_log = RunVm("disk", disk_id);
  EXPECT_TRUE(WaitForMarker(kernel_log)) << ReadFile(kernel_log).value_or("<no log>");
  EXPECT_TRUE(WaitForMarker(disk_log)) << ReadFile(disk_log).value_or("<no log>");
  // The disk VM runs on an overlay over the stored, read-only disk.
  auto vms = ListDirectory(vmletd_->state_dir() + "/vms");
  ASSERT_TRUE(vms.ok());
  bool found_overlay = false;
  for (const std::string& vm : *vms) {
    const std::string overlay = StrCat(vmletd_->state_dir(), "/vms/", vm, "/root.qcow2");
    if (::access(overlay.c_str(), F_OK) != 0) continue;
    auto info = RunCommand({"/usr/bin/qemu-img", "info", "-U", overlay});
    ASSERT_TRUE(info.ok());
    EXPECT_THAT(info->output, HasSubstr(StrCat("images/sha256/", disk_id.substr(7))));
    found_overlay = true;
  }
  EXPECT_TRUE(found_overlay);
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  using vmlet::e2e::RunCommand;
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  const char* build_images = std::getenv("VMLET_BUILD_TEST_IMAGES");
  const char* registry_sh = std::getenv("VMLET_REGISTRY_SH");
  const char* images_dir = std::getenv("VMLET_TEST_IMAGES_DIR");
  if (vmlet::e2e::VmletdBinary().empty() || build_images == nullptr || registry_sh == nullptr ||
      images_dir == nullptr) {
    std::fprintf(stderr,
                 "VMLETD, VMLET_BUILD_TEST_IMAGES, VMLET_REGISTRY_SH or "
                 "VMLET_TEST_IMAGES_DIR unset; skipping (exit 77)\n");
    return 77;
  }
  vmlet::e2e::g_images_dir = images_dir;
  auto built = RunCommand({"/bin/sh", build_images, images_dir}, absl::Minutes(5));
  if (!built.ok() || built->code == 77) {
    std::fprintf(stderr, "the test images cannot be built here; skipping (exit 77)\n");
    return 77;
  }
  if (built->code != 0) {
    std::fprintf(stderr, "build-test-images.sh failed (exit %d)\n", built->code);
    return 1;
  }
  const std::string registry_dir =
      vmlet::StrCat(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp", "/vmlet-registry-",
                    vmlet::GenerateId().substr(0, 8));
  auto started = RunCommand({"/bin/sh", registry_sh, "start", registry_dir}, absl::Minutes(1));
  if (!started.ok() || started->code == 77) {
    std::fprintf(stderr, "no registry here (docker-registry missing); skipping (exit 77)\n");
    return 77;
  }
  int result = 1;
  absl::StatusOr<std::string> address = vmlet::ReadFile(registry_dir + "/address");
  if (started->code == 0 && address.ok()) {
    vmlet::e2e::g_registry = std::string(address->substr(0, address->find('\n')));
    auto pushed = RunCommand({"/bin/sh", build_images, images_dir, "push", vmlet::e2e::g_registry},
                             absl::Minutes(5));
    if (pushed.ok() && pushed->code == 0) {
      result = RUN_ALL_TESTS();
      const auto* unit = ::testing::UnitTest::GetInstance();
      if (result == 0 && unit->skipped_test_count() > 0 && unit->successful_test_count() == 0) {
        result = 77;  // Everything selected skipped itself: not a pass.
      }
    } else {
      std::fprintf(stderr, "pushing the test images failed\n");
    }
  } else {
    std::fprintf(stderr, "the registry did not start\n");
  }
  (void)RunCommand({"/bin/sh", registry_sh, "stop", registry_dir}, absl::Minutes(1));
  return result;
}

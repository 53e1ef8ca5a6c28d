// Issue 10's restart matrix, end to end, with the real parts: vmletd with
// the libvirt driver booting the test guest under TCG, Debian's CNI plugins
// in a node namespace the test owns (node_env.h) and a local registry.
//
// StateMatrix: pods in every sandbox state {ready, not ready} x container
// state {created, running, exited}, plus VMs that change while vmletd is
// down (a destroyed domain, an undefined one, a namespace lost as in a node
// reboot). vmletd is SIGKILLed and restarted several times; every
// ListPodSandbox / PodSandboxStatus / ListContainers / ContainerStatus
// answer must be what it was before (or the reconciled state), stop and
// remove must work afterwards, and nothing may be left.
//
// FaultPoints.<point>: one test per point `vmletd --list-fault-points`
// prints. vmletd starts with the point armed (VMLET_FAULT_KILL_AT) and the
// test drives a pod's whole life -- PullImage, RunPodSandbox, Create/Start/
// Stop/RemoveContainer, a second CreateContainer and StartContainer,
// StopPodSandbox, RemovePodSandbox -- until a call fails because vmletd
// killed itself there. vmletd restarts unarmed; what the crash interrupted
// must be absent or in a state the kubelet can clean up, nothing may be
// half-made; the kubelet's retry of the call must succeed; the pod is
// stopped and removed and nothing may be left (leak_check.h). A point that
// the life never reaches is a failure.
//
// Environment: VMLET_RESTART_MATRIX_ROUNDS, SIGKILL+restart rounds of the
// state matrix (default 3). Pick points with --gtest_filter, e.g.
// --gtest_filter='FaultPoints.libvirt.*'.
//
// Skipped (exit 77) without root, libvirtd, QEMU, the CNI plugins, the
// guest's packages or the registry tools. Runs on gtest's main thread.
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/str_util.h"
#include "network/netns.h"
#include "tests/e2e/leak_check.h"
#include "tests/e2e/node_env.h"
#include "tests/e2e/test_guest.h"
#include "tests/e2e/vmletd_process.h"
#include "vmlet/vmspec/v1/vmspec.grpc.pb.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
namespace spec_v1 = ::vmlet::vmspec::v1;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string g_build_images;  // tests/image/build-test-images.sh
std::string g_registry_sh;   // tests/image/registry.sh
std::string g_images_dir;    // Where build-test-images.sh builds.

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

// ---- CRI calls, each with a deadline ----

void WithDeadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(3));
}

class Cri {
 public:
  explicit Cri(NodeEnv* node) : node_(node) {}

  grpc::Status RunPod(const v1::PodSandboxConfig& config, std::string* id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::RunPodSandboxRequest request;
    *request.mutable_config() = config;
    request.set_runtime_handler("vmlet");
    v1::RunPodSandboxResponse response;
    grpc::Status status = node_->runtime().RunPodSandbox(&context, request, &response);
    if (status.ok()) *id = response.pod_sandbox_id();
    return status;
  }
  grpc::Status Create(const std::string& sandbox_id, const v1::PodSandboxConfig& sandbox,
                      uint32_t attempt, const std::string& image, std::string* id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(sandbox_id);
    *request.mutable_sandbox_config() = sandbox;
    v1::ContainerConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name("vm");
    config->mutable_metadata()->set_attempt(attempt);
    config->mutable_image()->set_image(image);
    config->set_log_path(StrCat("vm/", attempt, ".log"));
    config->mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(256 << 20);
    (*config->mutable_labels())["io.kubernetes.container.name"] = "vm";
    v1::CreateContainerResponse response;
    grpc::Status status = node_->runtime().CreateContainer(&context, request, &response);
    if (status.ok()) *id = response.container_id();
    return status;
  }
  grpc::Status Start(const std::string& id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    return node_->runtime().StartContainer(&context, request, &response);
  }
  grpc::Status Stop(const std::string& id, int64_t timeout) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::StopContainerRequest request;
    request.set_container_id(id);
    request.set_timeout(timeout);
    v1::StopContainerResponse response;
    return node_->runtime().StopContainer(&context, request, &response);
  }
  grpc::Status Remove(const std::string& id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::RemoveContainerRequest request;
    request.set_container_id(id);
    v1::RemoveContainerResponse response;
    return node_->runtime().RemoveContainer(&context, request, &response);
  }
  grpc::Status StopPod(const std::string& id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::StopPodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse response;
    return node_->runtime().StopPodSandbox(&context, request, &response);
  }
  grpc::Status RemovePod(const std::string& id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::RemovePodSandboxResponse response;
    return node_->runtime().RemovePodSandbox(&context, request, &response);
  }
  grpc::Status Pull(const std::string& ref, std::string* id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::PullImageRequest request;
    request.mutable_image()->set_image(ref);
    v1::PullImageResponse response;
    grpc::Status status = node_->image().PullImage(&context, request, &response);
    if (status.ok()) *id = response.image_ref();
    return status;
  }
  // The image's id, "" when the node does not have it.
  std::string ImageId(const std::string& ref) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::ImageStatusRequest request;
    request.mutable_image()->set_image(ref);
    v1::ImageStatusResponse response;
    grpc::Status status = node_->image().ImageStatus(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.has_image() ? response.image().id() : "";
  }
  grpc::Status RemoveImage(const std::string& ref) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::RemoveImageRequest request;
    request.mutable_image()->set_image(ref);
    v1::RemoveImageResponse response;
    return node_->image().RemoveImage(&context, request, &response);
  }

  std::vector<v1::PodSandbox> Sandboxes() {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::ListPodSandboxResponse response;
    grpc::Status status =
        node_->runtime().ListPodSandbox(&context, v1::ListPodSandboxRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.items().begin(), response.items().end()};
  }
  std::vector<v1::Container> Containers() {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::ListContainersResponse response;
    grpc::Status status =
        node_->runtime().ListContainers(&context, v1::ListContainersRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.containers().begin(), response.containers().end()};
  }
  v1::PodSandboxStatus SandboxStatus(const std::string& id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    v1::PodSandboxStatusResponse response;
    grpc::Status status = node_->runtime().PodSandboxStatus(&context, request, &response);
    EXPECT_TRUE(status.ok()) << id << ": " << status.error_message();
    return response.status();
  }
  v1::ContainerStatus ContainerStatus(const std::string& id) {
    grpc::ClientContext context;
    WithDeadline(&context);
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    v1::ContainerStatusResponse response;
    grpc::Status status = node_->runtime().ContainerStatus(&context, request, &response);
    EXPECT_TRUE(status.ok()) << id << ": " << status.error_message();
    return response.status();
  }

  // Every answer the kubelet's relist reads, by "<kind> <id>".
  std::map<std::string, std::string> View() {
    std::map<std::string, std::string> view;
    for (const v1::PodSandbox& sandbox : Sandboxes()) {
      view[StrCat("list-sandbox ", sandbox.id())] = sandbox.DebugString();
      view[StrCat("sandbox ", sandbox.id())] = SandboxStatus(sandbox.id()).DebugString();
    }
    for (const v1::Container& container : Containers()) {
      view[StrCat("list-container ", container.id())] = container.DebugString();
      view[StrCat("container ", container.id())] = ContainerStatus(container.id()).DebugString();
    }
    return view;
  }

 private:
  NodeEnv* node_;
};

// The domains of the node's pod namespace and their states ("running",
// "paused", "shut off"), from one `virsh list --all`.
std::map<std::string, std::string> Domains(const NodeEnv& node) {
  std::map<std::string, std::string> domains;
  std::istringstream lines(Virsh({"list", "--all"}));
  for (std::string line; std::getline(lines, line);) {
    // " 12   vmlet-ns-pod-1a2b3c4d   running" (the id is "-" when shut off).
    std::istringstream fields(line);
    std::string id, name, state;
    fields >> id >> name;
    std::getline(fields, state);
    state.erase(0, state.find_first_not_of(' '));
    if (name.starts_with("vmlet-" + node.pod_namespace())) domains[name] = state;
  }
  return domains;
}

// The state of the VM of container `id`, or "" when it has no domain.
std::string DomainState(const std::map<std::string, std::string>& domains, const std::string& id) {
  for (const auto& [name, state] : domains) {
    if (name.ends_with("-" + id.substr(0, 8))) return state;
  }
  return "";
}
std::string DomainState(const NodeEnv& node, const std::string& id) {
  return DomainState(Domains(node), id);
}

// The 64-digit hex ids (sandbox and container ids) in `path`.
std::vector<std::string> HexIds(const std::string& path) {
  std::vector<std::string> ids;
  size_t run = 0;
  for (size_t i = 0; i <= path.size(); ++i) {
    const bool hex = i < path.size() && std::isxdigit(static_cast<unsigned char>(path[i])) &&
                     !std::isupper(static_cast<unsigned char>(path[i]));
    if (hex) {
      ++run;
      continue;
    }
    if (run == 64) ids.push_back(path.substr(i - run, run));
    run = 0;
  }
  return ids;
}

// Nothing half-made: every VM, file, namespace, link and address belongs
// to an object the CRI lists, in a state that needs it, and no temporary
// file is left.
void ExpectNothingHalfMade(NodeEnv& node, Cri& cri) {
  std::set<std::string> sandboxes, ready, containers;
  const std::map<std::string, std::string> domains = Domains(node);
  for (const v1::PodSandbox& sandbox : cri.Sandboxes()) {
    sandboxes.insert(sandbox.id());
    if (sandbox.state() == v1::SANDBOX_READY) ready.insert(sandbox.id());
  }
  for (const v1::Container& container : cri.Containers()) {
    containers.insert(container.id());
    const std::string state = DomainState(domains, container.id());
    switch (container.state()) {
      case v1::CONTAINER_CREATED:
        EXPECT_EQ(state, "paused") << "the VM of created container " << container.id();
        break;
      case v1::CONTAINER_RUNNING:
        EXPECT_EQ(state, "running") << "the VM of running container " << container.id();
        EXPECT_GT(cri.ContainerStatus(container.id()).started_at(), 0) << container.id();
        break;
      case v1::CONTAINER_EXITED: {
        EXPECT_TRUE(state.empty() || state == "shut off") << container.id() << ": " << state;
        v1::ContainerStatus status = cri.ContainerStatus(container.id());
        EXPECT_GT(status.finished_at(), 0) << container.id();
        EXPECT_FALSE(status.reason().empty()) << container.id();
        break;
      }
      default:
        ADD_FAILURE() << "container " << container.id() << " is in state "
                      << v1::ContainerState_Name(container.state());
    }
  }
  for (const auto& [domain, state] : domains) {
    bool known = false;
    for (const std::string& id : containers) known |= domain.ends_with("-" + id.substr(0, 8));
    EXPECT_TRUE(known) << "domain " << domain << " belongs to no container";
  }
  for (const std::string& id : ready) {
    EXPECT_THAT(cri.SandboxStatus(id).network().ip(), ::testing::StartsWith(NodeEnv::kSubnetPrefix))
        << "ready sandbox " << id;
    EXPECT_TRUE(network::IsNetns(StrCat(node.run_dir(), "/netns/", id))) << "sandbox " << id;
  }

  const LeakSnapshot now = TakeLeakSnapshot(node.Scope());
  EXPECT_THAT(now.errors, IsEmpty());
  for (const std::string& path : now.state) {
    EXPECT_EQ(path.find(".tmp-"), std::string::npos) << "temporary file " << path;
    EXPECT_FALSE(path.starts_with("images/tmp/") && path != "images/tmp/")
        << "an interrupted pull is left: " << path;
    // Records, pod and VM files name their object (a seed of a VM is
    // pods/<sandbox>/seed-<container>.iso): each must still exist.
    if (!path.starts_with("vms/") && !path.starts_with("containers/") &&
        !path.starts_with("pods/") && !path.starts_with("sandboxes/")) {
      continue;
    }
    for (const std::string& id : HexIds(path)) {
      EXPECT_TRUE(sandboxes.contains(id) || containers.contains(id))
          << path << " belongs to no listed object";
    }
  }
  for (const std::string& path : now.run) {
    if (!path.starts_with("netns/") || path == "netns/") continue;
    EXPECT_TRUE(ready.contains(path.substr(6))) << "netns " << path << " of no ready sandbox";
  }
  int veths = 0;
  for (const std::string& link : now.links) veths += link.starts_with("veth") ? 1 : 0;
  EXPECT_EQ(veths, static_cast<int>(ready.size())) << "veths on the node";
  for (const std::string& allocation : now.ipam) {
    std::string owner = ReadAll(StrCat(node.ipam_dir(), "/", allocation));
    owner = owner.substr(0, owner.find_first_of("\r\n"));
    EXPECT_TRUE(ready.contains(owner)) << "address " << allocation << " held by " << owner;
  }
  EXPECT_EQ(now.ipam.size(), ready.size()) << "host-local allocations";
}

void ExpectNoLeaks(const LeakSnapshot& baseline, const LeakScope& scope) {
  std::vector<std::string> leaks = Diff(baseline, TakeLeakSnapshot(scope));
  EXPECT_THAT(leaks, IsEmpty()) << "left behind:\n" << FormatLeaks(leaks);
}

// The part of vmletd's log written since `offset`.
std::string LogSince(const VmletdProcess& vmletd, size_t offset) {
  std::string log = vmletd.Log();
  return offset < log.size() ? log.substr(offset) : log;
}

// ---- The state matrix ----

class StateMatrixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<NodeEnv>(NodeEnvOptions{.namespace_prefix = "matrix"});
    ASSERT_TRUE(node_->init_status().ok()) << node_->init_status();
    absl::Status started = node_->vmletd().Start();
    ASSERT_TRUE(started.ok()) << started;
    cri_ = std::make_unique<Cri>(node_.get());
    baseline_ = TakeLeakSnapshot(node_->Scope());
  }
  void TearDown() override {
    if (HasFailure() && node_) {
      std::fprintf(stderr, "---- vmletd log ----\n%s\n", node_->vmletd().Log().c_str());
    }
    cri_.reset();
    node_.reset();
  }

  std::unique_ptr<NodeEnv> node_;
  std::unique_ptr<Cri> cri_;
  LeakSnapshot baseline_;
};

struct MatrixPod {
  std::string name;
  bool start = false;           // StartContainer.
  bool stop_container = false;  // StopContainer (timeout 0: destroyed).
  bool stop_pod = false;        // StopPodSandbox.
  // While vmletd is down, before the first restart:
  enum class Change { kNone, kDestroyVm, kUndefineVm, kBreakNetwork } change = Change::kNone;
  v1::PodSandboxConfig config;
  std::string sandbox_id;
  std::string container_id;
};

TEST_F(StateMatrixTest, EveryStateSurvivesSigkillAndRestart) {
  using Change = MatrixPod::Change;
  std::vector<MatrixPod> pods = {
      {.name = "ready-created"},
      {.name = "ready-running", .start = true},
      {.name = "ready-exited", .start = true, .stop_container = true},
      // StopPodSandbox stops a created container's VM too: exited.
      {.name = "stopped-created", .stop_pod = true},
      {.name = "notready-exited", .start = true, .stop_pod = true},
      // Not ready with a live VM only happens when the network breaks while
      // vmletd is down: the next start reports the sandbox not ready.
      {.name = "notready-created", .change = Change::kBreakNetwork},
      {.name = "notready-running", .start = true, .change = Change::kBreakNetwork},
      {.name = "vm-destroyed", .start = true, .change = Change::kDestroyVm},
      {.name = "vm-undefined", .change = Change::kUndefineVm},
  };
  for (MatrixPod& pod : pods) {
    pod.config = node_->PodConfig(pod.name);
    grpc::Status status = cri_->RunPod(pod.config, &pod.sandbox_id);
    ASSERT_TRUE(status.ok()) << pod.name << ": " << status.error_message();
    status = cri_->Create(pod.sandbox_id, pod.config, 0, node_->image_name(), &pod.container_id);
    ASSERT_TRUE(status.ok()) << pod.name << ": " << status.error_message();
    if (pod.start) {
      status = cri_->Start(pod.container_id);
      ASSERT_TRUE(status.ok()) << pod.name << ": " << status.error_message();
    }
    if (pod.stop_container) {
      status = cri_->Stop(pod.container_id, 0);
      ASSERT_TRUE(status.ok()) << pod.name << ": " << status.error_message();
    }
    if (pod.stop_pod) {
      status = cri_->StopPod(pod.sandbox_id);
      ASSERT_TRUE(status.ok()) << pod.name << ": " << status.error_message();
    }
  }
  const std::map<std::string, std::string> before = cri_->View();
  ExpectNothingHalfMade(*node_, *cri_);

  const int rounds = std::max(1, EnvInt("VMLET_RESTART_MATRIX_ROUNDS", 3));
  std::map<std::string, std::string> reconciled;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(StrCat("restart ", round + 1, " of ", rounds));
    ASSERT_TRUE(node_->vmletd().Kill().ok());
    if (round == 0) {
      for (const MatrixPod& pod : pods) {
        const std::string domain = StrCat("vmlet-", node_->pod_namespace(), "-", pod.name, "-",
                                          pod.container_id.substr(0, 8));
        switch (pod.change) {
          case Change::kDestroyVm:
            EXPECT_THAT(Virsh({"destroy", domain}), HasSubstr("destroyed"));
            break;
          case Change::kUndefineVm:
            EXPECT_THAT(Virsh({"destroy", domain}), HasSubstr("destroyed"));
            EXPECT_THAT(Virsh({"undefine", domain}), HasSubstr("undefined"));
            break;
          case Change::kBreakNetwork: {
            // The VM's tap is gone: the sandbox's network cannot be served
            // any more (the VM runs on, without a NIC backend).
            absl::StatusOr<ExitStatus> deleted =
                RunCommand({kNsenter, StrCat("--net=", node_->run_dir(), "/netns/", pod.sandbox_id),
                            "--", "ip", "link", "del", "tap0"});
            EXPECT_TRUE(deleted.ok() && deleted->code == 0) << "deleting tap0 of " << pod.name;
            break;
          }
          case Change::kNone:
            break;
        }
      }
    }
    absl::Status started = node_->vmletd().Start();
    ASSERT_TRUE(started.ok()) << started;
    const std::map<std::string, std::string> after = cri_->View();
    if (round > 0) {
      // Once reconciled, every answer stays the same over restarts.
      EXPECT_EQ(after, reconciled);
      continue;
    }
    reconciled = after;
    ASSERT_EQ(after.size(), before.size());
    for (const MatrixPod& pod : pods) {
      SCOPED_TRACE(pod.name);
      const std::string sandbox_key = StrCat("sandbox ", pod.sandbox_id);
      const std::string container_key = StrCat("container ", pod.container_id);
      v1::PodSandboxStatus sandbox = cri_->SandboxStatus(pod.sandbox_id);
      v1::ContainerStatus container = cri_->ContainerStatus(pod.container_id);
      switch (pod.change) {
        case Change::kNone:
          EXPECT_EQ(after.at(sandbox_key), before.at(sandbox_key));
          EXPECT_EQ(after.at(container_key), before.at(container_key));
          EXPECT_EQ(after.at("list-" + container_key), before.at("list-" + container_key));
          break;
        case Change::kBreakNetwork:
          // The sandbox cannot work any more: not ready, so that the kubelet
          // replaces it (its network is torn down); the VM keeps running.
          EXPECT_EQ(sandbox.state(), v1::SANDBOX_NOTREADY);
          EXPECT_EQ(after.at(container_key), before.at(container_key));
          break;
        case Change::kDestroyVm:
          EXPECT_EQ(after.at(sandbox_key), before.at(sandbox_key));
          EXPECT_EQ(container.state(), v1::CONTAINER_EXITED);
          EXPECT_EQ(container.exit_code(), 137);
          EXPECT_EQ(container.reason(), "Killed");
          EXPECT_GT(container.finished_at(), container.started_at());
          break;
        case Change::kUndefineVm:
          EXPECT_EQ(after.at(sandbox_key), before.at(sandbox_key));
          EXPECT_EQ(container.state(), v1::CONTAINER_EXITED);
          EXPECT_EQ(container.exit_code(), 255);
          EXPECT_EQ(container.reason(), "Unknown");
          break;
      }
    }
    ExpectNothingHalfMade(*node_, *cri_);
    for (const MatrixPod& pod : pods) {
      std::printf("state matrix: %-16s sandbox %-13s container %s\n", pod.name.c_str(),
                  v1::PodSandboxState_Name(cri_->SandboxStatus(pod.sandbox_id).state()).c_str(),
                  v1::ContainerState_Name(cri_->ContainerStatus(pod.container_id).state()).c_str());
    }
  }

  // The kubelet's way out: stop the containers with a grace period, stop
  // the sandboxes, remove the containers, remove the sandboxes.
  for (const MatrixPod& pod : pods) {
    SCOPED_TRACE(pod.name);
    EXPECT_TRUE(cri_->Stop(pod.container_id, 2).ok());  // A created one stays created.
    EXPECT_NE(cri_->ContainerStatus(pod.container_id).state(), v1::CONTAINER_RUNNING);
    EXPECT_TRUE(cri_->StopPod(pod.sandbox_id).ok());
    EXPECT_EQ(cri_->ContainerStatus(pod.container_id).state(), v1::CONTAINER_EXITED);
    EXPECT_TRUE(cri_->Remove(pod.container_id).ok());
    EXPECT_TRUE(cri_->RemovePod(pod.sandbox_id).ok());
  }
  EXPECT_THAT(cri_->Sandboxes(), IsEmpty());
  EXPECT_THAT(cri_->Containers(), IsEmpty());
  ExpectNoLeaks(baseline_, node_->Scope());
  std::printf("state matrix: %zu pods, %d SIGKILL+restart rounds\n", pods.size(), rounds);
}

// ---- Fault points ----

constexpr char kSpecName[] = "fault";

// What every FaultPoints test shares: one node, one registry in the node's
// namespace holding disk:1, one vmletd (restarted per test), a VM spec with
// an empty disk and cloud-init user data.
struct FaultSuite {
  std::unique_ptr<NodeEnv> node;
  std::unique_ptr<Cri> cri;
  std::string registry_dir;
  std::string image_ref;  // <registry>/vmlet-test/disk:1
  LeakSnapshot baseline;
  bool ready = false;
};

FaultSuite& Suite() {
  static auto* suite = new FaultSuite();
  return *suite;
}

// The life of one pod, step by step; each step repeats its call exactly
// (same request) when retried.
class PodLife {
 public:
  PodLife(NodeEnv* node, Cri* cri, const std::string& image_ref)
      : node_(node), cri_(cri), image_ref_(image_ref) {
    config_ = node_->PodConfig("fault");
    (*config_.mutable_annotations())["vmlet.io/vmspec"] = kSpecName;
  }

  struct Step {
    std::string name;
    std::function<grpc::Status()> call;
    // After the crash in this call and a restart: what the kubelet would
    // do about it (OK when the call need not be repeated).
    std::function<grpc::Status()> retry;
    // After the retry: the call's work is complete.
    std::function<void()> check;
  };

  std::vector<Step> Steps() {
    return {
        {"PullImage", [this] { return cri_->Pull(image_ref_, &image_id_); },
         [this] { return cri_->Pull(image_ref_, &image_id_); },
         [this] { EXPECT_EQ(cri_->ImageId(image_ref_), image_id_); }},
        {"RunPodSandbox", [this] { return cri_->RunPod(config_, &sandbox_id_); },
         [this] {
           // A sandbox that survived the crash is ready, and the retry
           // (same metadata and attempt) returns it.
           const std::string found = FindSandbox();
           grpc::Status status = cri_->RunPod(config_, &sandbox_id_);
           if (status.ok() && !found.empty()) {
             EXPECT_EQ(sandbox_id_, found);
           }
           return status;
         },
         [this] {
           v1::PodSandboxStatus status = cri_->SandboxStatus(sandbox_id_);
           EXPECT_EQ(status.state(), v1::SANDBOX_READY);
           EXPECT_THAT(status.network().ip(), ::testing::StartsWith(NodeEnv::kSubnetPrefix));
         }},
        CreateStep(0),
        StartStep(0),
        {"StopContainer", [this] { return cri_->Stop(container_ids_[0], 1); },
         [this] { return cri_->Stop(container_ids_[0], 1); },
         [this] {
           EXPECT_EQ(cri_->ContainerStatus(container_ids_[0]).state(), v1::CONTAINER_EXITED);
         }},
        {"RemoveContainer", [this] { return cri_->Remove(container_ids_[0]); },
         [this] { return cri_->Remove(container_ids_[0]); },
         [this] {
           for (const v1::Container& c : cri_->Containers()) EXPECT_NE(c.id(), container_ids_[0]);
           EXPECT_EQ(DomainState(*node_, container_ids_[0]), "");
         }},
        CreateStep(1),
        StartStep(1),
        {"StopPodSandbox", [this] { return cri_->StopPod(sandbox_id_); },
         [this] { return cri_->StopPod(sandbox_id_); },
         [this] {
           EXPECT_EQ(cri_->SandboxStatus(sandbox_id_).state(), v1::SANDBOX_NOTREADY);
           EXPECT_EQ(cri_->ContainerStatus(container_ids_[1]).state(), v1::CONTAINER_EXITED);
           EXPECT_FALSE(network::IsNetns(StrCat(node_->run_dir(), "/netns/", sandbox_id_)));
         }},
        {"RemovePodSandbox", [this] { return cri_->RemovePod(sandbox_id_); },
         [this] { return cri_->RemovePod(sandbox_id_); },
         [this] {
           EXPECT_THAT(cri_->Sandboxes(), IsEmpty());
           EXPECT_THAT(cri_->Containers(), IsEmpty());
         }},
    };
  }

  // The kubelet's (and the image GC's) clean-up after whatever step:
  // everything must succeed.
  void StopAndRemoveEverything() {
    if (sandbox_id_.empty()) sandbox_id_ = FindSandbox();
    if (!sandbox_id_.empty()) {
      grpc::Status status = cri_->StopPod(sandbox_id_);
      EXPECT_TRUE(status.ok()) << status.error_message();
      status = cri_->RemovePod(sandbox_id_);
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    grpc::Status status = cri_->RemoveImage(image_ref_);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  const std::string& sandbox_id() const { return sandbox_id_; }

 private:
  // The sandbox of this pod vmletd lists, if any.
  std::string FindSandbox() {
    std::string id;
    for (const v1::PodSandbox& sandbox : cri_->Sandboxes()) {
      if (sandbox.metadata().name() != config_.metadata().name() ||
          sandbox.metadata().namespace_() != config_.metadata().namespace_()) {
        continue;
      }
      EXPECT_TRUE(id.empty()) << "two sandboxes of one pod";
      EXPECT_EQ(sandbox.state(), v1::SANDBOX_READY)
          << "an interrupted RunPodSandbox left sandbox " << sandbox.id() << " not ready";
      id = sandbox.id();
    }
    return id;
  }
  // The container of attempt `attempt` vmletd lists, if any.
  std::string FindContainer(uint32_t attempt) {
    std::string id;
    for (const v1::Container& container : cri_->Containers()) {
      if (container.metadata().attempt() != attempt) continue;
      EXPECT_TRUE(id.empty()) << "two containers of one attempt";
      EXPECT_EQ(container.state(), v1::CONTAINER_CREATED)
          << "an interrupted CreateContainer left container " << container.id() << " in state "
          << v1::ContainerState_Name(container.state());
      id = container.id();
    }
    return id;
  }

  Step CreateStep(uint32_t attempt) {
    return {
        StrCat("CreateContainer (attempt ", attempt, ")"),
        [this, attempt] {
          return cri_->Create(sandbox_id_, config_, attempt, image_id_, &container_ids_[attempt]);
        },
        [this, attempt] {
          const std::string found = FindContainer(attempt);
          grpc::Status status =
              cri_->Create(sandbox_id_, config_, attempt, image_id_, &container_ids_[attempt]);
          if (status.ok() && !found.empty()) {
            EXPECT_EQ(container_ids_[attempt], found);
          }
          return status;
        },
        [this, attempt] {
          EXPECT_EQ(cri_->ContainerStatus(container_ids_[attempt]).state(), v1::CONTAINER_CREATED);
          EXPECT_EQ(DomainState(*node_, container_ids_[attempt]), "paused");
        }};
  }
  Step StartStep(uint32_t attempt) {
    return {StrCat("StartContainer (attempt ", attempt, ")"),
            [this, attempt] { return cri_->Start(container_ids_[attempt]); },
            [this, attempt] {
              // Started already (the crash came after the VM ran): nothing
              // to repeat; a created container is started again.
              v1::ContainerStatus status = cri_->ContainerStatus(container_ids_[attempt]);
              if (status.state() == v1::CONTAINER_RUNNING) return grpc::Status::OK;
              EXPECT_EQ(status.state(), v1::CONTAINER_CREATED);
              return cri_->Start(container_ids_[attempt]);
            },
            [this, attempt] {
              v1::ContainerStatus status = cri_->ContainerStatus(container_ids_[attempt]);
              EXPECT_EQ(status.state(), v1::CONTAINER_RUNNING);
              EXPECT_GT(status.started_at(), 0);
              EXPECT_EQ(DomainState(*node_, container_ids_[attempt]), "running");
            }};
  }

  NodeEnv* node_;
  Cri* cri_;
  std::string image_ref_;
  v1::PodSandboxConfig config_;
  std::string image_id_;
  std::string sandbox_id_;
  std::string container_ids_[2];
};

class FaultPointTest : public ::testing::Test {
 public:
  explicit FaultPointTest(std::string point) : point_(std::move(point)) {}

  static void SetUpTestSuite();
  static void TearDownTestSuite();

  void TestBody() override;

 protected:
  void TearDown() override;

  // vmletd with the point armed (or not, for "").
  absl::Status StartVmletd(const std::string& armed) {
    NodeEnv& node = *Suite().node;
    std::vector<std::string> wrapper;
    if (!armed.empty()) wrapper = {"/usr/bin/env", StrCat("VMLET_FAULT_KILL_AT=", armed)};
    wrapper.insert(wrapper.end(), {kNsenter, "--net=" + node.node_netns(), "--"});
    node.vmletd().set_wrapper(wrapper);
    return node.vmletd().Start(absl::Seconds(60));
  }

  std::string point_;
  size_t log_offset_ = 0;
};

void FaultPointTest::SetUpTestSuite() {
  FaultSuite& suite = Suite();
  if (suite.node) return;
  suite.node = std::make_unique<NodeEnv>(NodeEnvOptions{.namespace_prefix = "fault"});
  NodeEnv& node = *suite.node;
  ASSERT_TRUE(node.init_status().ok()) << node.init_status();
  // The registry listens on the node namespace's loopback, where vmletd is.
  suite.registry_dir = StrCat("/tmp/vmlet-registry-", GenerateId().substr(0, 8));
  absl::StatusOr<ExitStatus> started =
      RunCommand({kNsenter, "--net=" + node.node_netns(), "--", "/bin/sh", g_registry_sh, "start",
                  suite.registry_dir},
                 absl::Minutes(1));
  ASSERT_TRUE(started.ok() && started->code == 0) << "registry.sh start failed";
  absl::StatusOr<std::string> address = ReadFile(suite.registry_dir + "/address");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string registry = address->substr(0, address->find('\n'));
  absl::StatusOr<ExitStatus> pushed =
      RunCommand({kNsenter, "--net=" + node.node_netns(), "--", "/bin/sh", g_build_images,
                  g_images_dir, "push", registry, "disk:1"},
                 absl::Minutes(5));
  ASSERT_TRUE(pushed.ok() && pushed->code == 0) << "pushing disk:1 failed";
  suite.image_ref = StrCat(registry, "/vmlet-test/disk:1");
  // The registry is plain HTTP.
  absl::StatusOr<std::string> config = ReadFile(node.vmletd().config_path());
  ASSERT_TRUE(config.ok());
  ASSERT_TRUE(WriteFileAtomically(
                  node.vmletd().config_path(),
                  StrCat(*config, "registries:\n  \"", registry, "\":\n    insecure: true\n"), 0600)
                  .ok());
  absl::Status running = node.vmletd().Start();
  ASSERT_TRUE(running.ok()) << running;
  suite.cri = std::make_unique<Cri>(&node);

  // The pod's VM spec: an empty disk and cloud-init user data (the VM gets
  // a seed of its own).
  auto specs = spec_v1::VmSpecs::NewStub(grpc::CreateChannel(
      StrCat("unix:", node.dir(), "/vmspec.sock"), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  spec_v1::ApplyRequest apply;
  spec_v1::VmSpec* spec = apply.mutable_vm_spec();
  spec->mutable_metadata()->set_namespace_(node.pod_namespace());
  spec->mutable_metadata()->set_name(kSpecName);
  spec_v1::Disk* data = spec->mutable_spec()->add_disks();
  data->set_name("data");
  data->mutable_empty()->set_size("16Mi");
  spec->mutable_spec()->mutable_cloud_init()->set_user_data("#cloud-config\nhostname: fault\n");
  spec_v1::ApplyResponse applied;
  grpc::Status status = specs->Apply(&context, apply, &applied);
  ASSERT_TRUE(status.ok()) << status.error_message();
  suite.baseline = TakeLeakSnapshot(node.Scope());
  ASSERT_THAT(suite.baseline.errors, IsEmpty());
  std::printf(
      "leak check baseline: %zu entries under state_dir, %zu under run_dir, %zu mounts, %zu "
      "links, %zu iptables lines\n",
      suite.baseline.state.size(), suite.baseline.run.size(), suite.baseline.mounts.size(),
      suite.baseline.links.size(), suite.baseline.iptables.size());
  suite.ready = true;
}

void FaultPointTest::TearDownTestSuite() {
  FaultSuite& suite = Suite();
  suite.cri.reset();
  suite.node.reset();
  if (!suite.registry_dir.empty()) {
    (void)RunCommand({"/bin/sh", g_registry_sh, "stop", suite.registry_dir}, absl::Minutes(1));
  }
  suite.ready = false;
}

void FaultPointTest::TestBody() {
  FaultSuite& suite = Suite();
  ASSERT_TRUE(suite.ready) << "the suite's node, registry or vmletd did not come up";
  NodeEnv& node = *suite.node;
  Cri& cri = *suite.cri;
  log_offset_ = node.vmletd().Log().size();
  if (node.vmletd().running()) {
    ASSERT_TRUE(node.vmletd().Kill().ok());
  }
  // Where the time goes, for the report.
  absl::Time phase_start = absl::Now();
  std::string phases;
  auto phase = [&](const char* name) {
    const absl::Time now = absl::Now();
    StrAppend(&phases, phases.empty() ? "" : ", ", name, " ",
              absl::StrFormat("%.1f", absl::ToDoubleSeconds(now - phase_start)), " s");
    phase_start = now;
  };
  absl::Status armed = StartVmletd(point_);
  ASSERT_TRUE(armed.ok()) << armed;

  PodLife life(&node, &cri, suite.image_ref);
  std::vector<PodLife::Step> steps = life.Steps();
  size_t hit = steps.size();
  grpc::Status failed;
  for (size_t i = 0; i < steps.size(); ++i) {
    failed = steps[i].call();
    if (!failed.ok()) {
      hit = i;
      break;
    }
  }
  if (hit == steps.size()) {
    ADD_FAILURE() << "fault point " << point_
                  << " was never reached by a pod's life: put it where a call gets, or extend "
                     "PodLife";
    life.StopAndRemoveEverything();
    return;
  }
  const PodLife::Step& step = steps[hit];
  SCOPED_TRACE(StrCat("fault point ", point_, " in ", step.name));
  absl::StatusOr<ExitStatus> ended = node.vmletd().WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(ended.ok()) << step.name << " failed (" << failed.error_message()
                          << ") but vmletd did not die: " << ended.status();
  EXPECT_EQ(ended->signal, SIGKILL);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::UNAVAILABLE) << failed.error_message();
  EXPECT_THAT(LogSince(node.vmletd(), log_offset_),
              HasSubstr(StrCat("reached fault point ", point_)));
  phase("armed run");

  absl::Status restarted = StartVmletd("");
  ASSERT_TRUE(restarted.ok()) << restarted;
  phase("restart");
  ExpectNothingHalfMade(node, cri);
  phase("consistency check");
  grpc::Status retried = step.retry();
  ASSERT_TRUE(retried.ok()) << "the retry of " << step.name << ": " << retried.error_message();
  step.check();
  phase("retry");
  life.StopAndRemoveEverything();
  phase("stop and remove");
  ExpectNoLeaks(suite.baseline, node.Scope());
  phase("leak check");
  std::printf(
      "fault point %s: hit in %s (call %zu of %zu); reconciled, retried, nothing left (%s)\n",
      point_.c_str(), step.name.c_str(), hit + 1, steps.size(), phases.c_str());
}

void FaultPointTest::TearDown() {
  if (!HasFailure()) return;
  FaultSuite& suite = Suite();
  if (!suite.node) return;
  std::fprintf(stderr, "---- vmletd log of this test ----\n%s\n",
               LogSince(suite.node->vmletd(), log_offset_).c_str());
  // Leave a clean node to the next point, and judge it against that.
  if (suite.node->vmletd().running()) (void)suite.node->vmletd().Kill();
  (void)StartVmletd("");
  (void)suite.node->RemoveAllPods();
  if (suite.cri) (void)suite.cri->RemoveImage(suite.image_ref);
  suite.baseline = TakeLeakSnapshot(suite.node->Scope());
}

// Stands for the fault points of a vmletd built without them: skipped, so
// that the run says what it did not test.
class NoFaultPointsTest : public ::testing::Test {
 public:
  void TestBody() override {
    GTEST_SKIP() << "vmletd --list-fault-points lists nothing: built with "
                    "-Dfault_injection=false";
  }
};

std::vector<std::string> ListFaultPoints() {
  absl::StatusOr<ExitStatus> listed = RunCommand({VmletdBinary(), "--list-fault-points"});
  if (!listed.ok() || listed->code != 0) return {};
  std::vector<std::string> points;
  std::istringstream lines(listed->output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) points.push_back(line);
  }
  return points;
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  using namespace vmlet::e2e;  // NOLINT: main only.
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "the restart matrix needs root (namespaces, CNI); skipping (exit 77)\n");
    return 77;
  }
  const char* build_images = std::getenv("VMLET_BUILD_TEST_IMAGES");
  const char* registry_sh = std::getenv("VMLET_REGISTRY_SH");
  const char* images_dir = std::getenv("VMLET_TEST_IMAGES_DIR");
  if (build_images == nullptr || registry_sh == nullptr || images_dir == nullptr) {
    std::fprintf(stderr,
                 "VMLET_BUILD_TEST_IMAGES, VMLET_REGISTRY_SH or VMLET_TEST_IMAGES_DIR unset; "
                 "skipping (exit 77)\n");
    return 77;
  }
  g_build_images = build_images;
  g_registry_sh = registry_sh;
  g_images_dir = images_dir;
  std::vector<std::string> tools = NodeEnvTools();
  tools.push_back("/usr/bin/docker-registry");
  tools.push_back("/usr/bin/skopeo");
  if (int prepared = PrepareTestGuest(tools); prepared != 0) return prepared;
  absl::StatusOr<ExitStatus> built =
      RunCommand({"/bin/sh", g_build_images, g_images_dir}, absl::Minutes(5));
  if (!built.ok() || built->code == 77) {
    std::fprintf(stderr, "the test images cannot be built here; skipping (exit 77)\n");
    return 77;
  }
  if (built->code != 0) {
    std::fprintf(stderr, "build-test-images.sh failed (exit %d)\n", built->code);
    return 1;
  }
  const std::vector<std::string> points = ListFaultPoints();
  if (points.empty()) {
    ::testing::RegisterTest("FaultPoints", "NoneCompiledIn", nullptr, nullptr, __FILE__, __LINE__,
                            []() -> NoFaultPointsTest* { return new NoFaultPointsTest(); });
  }
  for (const std::string& point : points) {
    ::testing::RegisterTest("FaultPoints", point.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                            [point]() -> FaultPointTest* { return new FaultPointTest(point); });
  }
  const absl::Time start = absl::Now();
  int result = RUN_ALL_TESTS();
  const auto* unit = ::testing::UnitTest::GetInstance();
  std::printf(
      "restart matrix: %zu fault points listed, %d tests run, %d passed, %d failed, %.0f s\n",
      points.size(), unit->test_to_run_count(), unit->successful_test_count(),
      unit->failed_test_count(), absl::ToDoubleSeconds(absl::Now() - start));
  return result;
}

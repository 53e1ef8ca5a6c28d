// The CRI runtime and image services of vmletd, as plain C++: every method
// takes the request, fills the response and returns an absl::Status. The
// gRPC adapters in instrumented_service.h call these, convert the status and
// log each RPC; nothing here builds a wire status.
//
// One file per verb group implements these methods (sandbox_run.cc,
// container_create.cc, ...). Threading: every public method may be called
// from any gRPC worker thread concurrently. Stores own their locks; a
// per-object KeyedMutex serialises state changes of one sandbox or container.
#ifndef VMLET_CRI_CRI_SERVICE_H_
#define VMLET_CRI_CRI_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/keyed_mutex.h"
#include "cri/container_events.h"
#include "cri/stats_collector.h"
#include "cri/store/name_index.h"
#include "cri/store/record_store.h"
#include "cri/v1/api.pb.h"
#include "image/image_store.h"
#include "network/pod_network.h"
#include "streaming/runtime.h"
#include "streaming/server.h"
#include "vmdriver/vm_driver.h"
#include "vmlet/state/v1/records.pb.h"
#include "vmlet/vmspec/v1/vmspec.pb.h"

namespace vmlet::cri {

namespace v1 = ::runtime::v1;
using SandboxRecord = ::vmlet::state::v1::SandboxRecord;
using ContainerRecord = ::vmlet::state::v1::ContainerRecord;
using SandboxStore = store::RecordStore<SandboxRecord>;
using ContainerStore = store::RecordStore<ContainerRecord>;

// A record held under its object's lock, for stop and remove.
template <typename Record>
struct Locked {
  KeyedMutex::Lock lock;
  Record record;
};

struct CriOptions {
  std::string state_dir;  // Records live in <state_dir>/sandboxes and /containers.
  std::string run_dir;
  int default_vcpus = 1;
  int64_t default_memory_bytes = 512 * vmdriver::kMiB;
  // What a VM's vCPUs and memory may be raised to live; never below what
  // it starts with. 0: the node's CPU count; the start size (no growth).
  int max_vcpus = 0;
  int64_t max_memory_bytes = 0;
  // How often VM statistics are read from the driver (one bulk query);
  // zero: only through stats()->CollectNow() (tests).
  absl::Duration stats_interval = kDefaultStatsInterval;
  // What RuntimeConfig reports: "systemd" or "cgroupfs".
  std::string cgroup_driver = "cgroupfs";
  // Image name -> directory with a VM image layout (config `local_images`).
  std::map<std::string, std::string> local_images;
  // Registry settings by host and HTTP(S) name translations (image_store.h).
  std::map<std::string, image::RegistrySettings> registries;
  std::vector<image::TranslationRule> image_translations;
  image::RegistryClientOptions registry_client;
  // Finds a VM spec by namespace and name (NOT_FOUND when there is none).
  // Unset: no VM-spec support. Called from gRPC worker threads concurrently.
  std::function<absl::StatusOr<vmspec::v1::VmSpec>(std::string_view ns, std::string_view name)>
      find_vmspec;
};

class CriService;
// streaming_runtime.cc.
std::unique_ptr<streaming::Runtime> NewStreamingRuntime(CriService* service);

class CriService {
 public:
  // `driver` and `network` must outlive the service.
  CriService(CriOptions options, vmdriver::VmDriver* driver, network::PodNetwork* network);
  // Shutdown(), unless called before.
  ~CriService();

  // Loads the persisted records and reconciles them with the driver: work
  // interrupted by a crash is undone, VMs that ended meanwhile are recorded
  // as exited. Call once, before serving.
  absl::Status Init();

  // version_status.cc
  absl::Status Version(const v1::VersionRequest& req, v1::VersionResponse* resp);
  absl::Status Status(const v1::StatusRequest& req, v1::StatusResponse* resp);
  absl::Status UpdateRuntimeConfig(const v1::UpdateRuntimeConfigRequest& req,
                                   v1::UpdateRuntimeConfigResponse* resp);
  absl::Status RuntimeConfig(const v1::RuntimeConfigRequest& req, v1::RuntimeConfigResponse* resp);

  // stats.cc: answered from the stats collector's memory, never by a call
  // to the driver.
  absl::Status ContainerStats(const v1::ContainerStatsRequest& req,
                              v1::ContainerStatsResponse* resp);
  absl::Status ListContainerStats(const v1::ListContainerStatsRequest& req,
                                  v1::ListContainerStatsResponse* resp);
  absl::Status PodSandboxStats(const v1::PodSandboxStatsRequest& req,
                               v1::PodSandboxStatsResponse* resp);
  absl::Status ListPodSandboxStats(const v1::ListPodSandboxStatsRequest& req,
                                   v1::ListPodSandboxStatsResponse* resp);
  absl::Status ListMetricDescriptors(const v1::ListMetricDescriptorsRequest& req,
                                     v1::ListMetricDescriptorsResponse* resp);
  absl::Status ListPodSandboxMetrics(const v1::ListPodSandboxMetricsRequest& req,
                                     v1::ListPodSandboxMetricsResponse* resp);

  // container_update.cc: live vCPU, memory and cpuset changes of the VM.
  absl::Status UpdateContainerResources(const v1::UpdateContainerResourcesRequest& req,
                                        v1::UpdateContainerResourcesResponse* resp);
  absl::Status UpdatePodSandboxResources(const v1::UpdatePodSandboxResourcesRequest& req,
                                         v1::UpdatePodSandboxResourcesResponse* resp);

  // GetContainerEvents subscribes here. Valid for the service's life.
  ContainerEventHub* container_events() { return &events_; }
  // The VM statistics cache; its thread runs from Init to Shutdown.
  StatsCollector* stats() { return &stats_; }
  // How many containers are in each state ("running", ...).
  std::map<std::string, int> ContainersByState() const;
  // Stops taking the driver's events and the statistics thread and ends the
  // event streams (vmletd is stopping). Idempotent; the driver must still
  // exist at the first call.
  void Shutdown();

  // sandbox_*.cc
  absl::Status RunPodSandbox(const v1::RunPodSandboxRequest& req, v1::RunPodSandboxResponse* resp);
  absl::Status StopPodSandbox(const v1::StopPodSandboxRequest& req,
                              v1::StopPodSandboxResponse* resp);
  absl::Status RemovePodSandbox(const v1::RemovePodSandboxRequest& req,
                                v1::RemovePodSandboxResponse* resp);
  absl::Status PodSandboxStatus(const v1::PodSandboxStatusRequest& req,
                                v1::PodSandboxStatusResponse* resp);
  absl::Status ListPodSandbox(const v1::ListPodSandboxRequest& req,
                              v1::ListPodSandboxResponse* resp);

  // container_*.cc
  absl::Status CreateContainer(const v1::CreateContainerRequest& req,
                               v1::CreateContainerResponse* resp);
  absl::Status StartContainer(const v1::StartContainerRequest& req,
                              v1::StartContainerResponse* resp);
  absl::Status StopContainer(const v1::StopContainerRequest& req, v1::StopContainerResponse* resp);
  absl::Status RemoveContainer(const v1::RemoveContainerRequest& req,
                               v1::RemoveContainerResponse* resp);
  absl::Status ContainerStatus(const v1::ContainerStatusRequest& req,
                               v1::ContainerStatusResponse* resp);
  absl::Status ListContainers(const v1::ListContainersRequest& req,
                              v1::ListContainersResponse* resp);
  absl::Status ReopenContainerLog(const v1::ReopenContainerLogRequest& req,
                                  v1::ReopenContainerLogResponse* resp);
  // Runs the command in the VM through its guest agent; blocks the calling
  // thread until the command ends or its timeout passes.
  absl::Status ExecSync(const v1::ExecSyncRequest& req, v1::ExecSyncResponse* resp);

  // container_stream.cc. Exec, Attach and PortForward check the request
  // and return a URL of the streaming server, which runs the session
  // through streaming_runtime() when the client connects.
  absl::Status Exec(const v1::ExecRequest& req, v1::ExecResponse* resp);
  absl::Status Attach(const v1::AttachRequest& req, v1::AttachResponse* resp);
  absl::Status PortForward(const v1::PortForwardRequest& req, v1::PortForwardResponse* resp);
  // The server whose URLs Exec, Attach and PortForward return; without one
  // they answer UNAVAILABLE. Call before serving; it must outlive the
  // service's use of it.
  void SetStreamingServer(streaming::Server* server) { streaming_server_ = server; }
  // What the streaming server runs: exec through the guest agent, attach to
  // the serial console, port-forward to the pod's address. Lives as long
  // as the service.
  streaming::Runtime* streaming_runtime() { return streaming_runtime_.get(); }

  // image_service.cc
  absl::Status ListImages(const v1::ListImagesRequest& req, v1::ListImagesResponse* resp);
  absl::Status ImageStatus(const v1::ImageStatusRequest& req, v1::ImageStatusResponse* resp);
  absl::Status PullImage(const v1::PullImageRequest& req, v1::PullImageResponse* resp);
  absl::Status RemoveImage(const v1::RemoveImageRequest& req, v1::RemoveImageResponse* resp);
  absl::Status ImageFsInfo(const v1::ImageFsInfoRequest& req, v1::ImageFsInfoResponse* resp);

  // The node's image store, for the VM-spec API's image calls (pull with
  // progress, import). Valid after Init.
  image::ImageStore* images() { return images_.get(); }

  // vm_status.cc: for the VM-spec API.
  // The domain XML `req.vm_spec` would produce for the pod (by sandbox id,
  // or namespace+name; a placeholder pod with no network and a placeholder
  // kernel image when it does not exist). Validation errors as
  // CreateContainer's. Any thread.
  absl::StatusOr<std::string> RenderVm(const vmspec::v1::RenderRequest& req);
  // NOT_FOUND for an unknown pod. vcpus/memory as the VM has them now
  // (after live updates), addresses from the sandbox record, whether the
  // guest agent answers (a 1 s probe through Exec for a running VM), the
  // accelerator. Any thread.
  absl::StatusOr<vmspec::v1::VmStatus> GetVmStatus(const vmspec::v1::GetVmStatusRequest& req);
  // Sandbox ids (sorted) of pods whose current container was created from
  // spec ns/name with a generation < gen. Any thread.
  std::vector<std::string> PodsWithOlderSpec(std::string_view ns, std::string_view name,
                                             int64_t gen);

 private:
  // Called on the driver's event thread; only touches the container store.
  void OnVmEvent(const vmdriver::VmEvent& event);
  // Applies what the driver knows of a VM to its container record.
  absl::Status ApplyVmInfo(const std::string& container_id, const vmdriver::VmInfo& info);
  absl::Status ReconcileSandboxes();
  // At start-up: records the sandbox as not ready and tears its network
  // down, logging (not returning) a failure of the teardown.
  absl::Status MarkNotReadyAndTearDown(const SandboxRecord& sandbox);
  absl::Status ReconcileContainers();

  // Stops (forcibly when `timeout_seconds` <= 0) a running container and
  // records its exit; with `created_too`, also a created one (its VM is
  // QEMU, paused, holding the pod's tap: StopPodSandbox frees it). Caller
  // holds the container's lock.
  absl::Status StopContainerLocked(const ContainerRecord& record, int64_t timeout_seconds,
                                   bool created_too = false);
  // Destroys and deletes a container and its VM. Caller holds its lock.
  absl::Status RemoveContainerLocked(const ContainerRecord& record);

  // Resolves `id_or_prefix`, takes the object's lock and re-reads the record
  // under it. nullopt when there is no such object (stop and remove of a
  // missing object succeed).
  absl::StatusOr<std::optional<Locked<SandboxRecord>>> LockSandboxIfExists(
      std::string_view id_or_prefix);
  absl::StatusOr<std::optional<Locked<ContainerRecord>>> LockContainerIfExists(
      std::string_view id_or_prefix);

  std::string SandboxDir(const std::string& id) const;

  // The record of container `id` when it is running; otherwise
  // FAILED_PRECONDITION naming its state and then `only_then` (what only a
  // running container does). container_stream.cc.
  absl::StatusOr<ContainerRecord> GetRunningContainer(std::string_view id,
                                                      std::string_view only_then);
  // The streaming server, or UNAVAILABLE without one.
  absl::StatusOr<streaming::Server*> StreamingServer() const;

  // sandbox_network_ops.cc. Sets up the network of a sandbox being created
  // (recording each step in its record) and writes its cloud-init seed.
  absl::Status SetUpSandboxNetwork(const SandboxRecord& record);
  // Tears down what the record says was set up and records that; OK when
  // there is nothing (left) to tear down. Caller holds the sandbox's lock.
  absl::Status TearDownSandboxNetwork(const SandboxRecord& record);
  // Writes a container's own cloud-init seed to `path`: the sandbox's
  // network with `cloud_init` (from annotations and the VM spec).
  absl::Status WriteContainerSeed(const SandboxRecord& sandbox, const std::string& path,
                                  const vmspec::v1::CloudInit& cloud_init);
  // Removes the container's own seed, if it has one; logs a failure.
  void RemoveContainerSeed(const ContainerRecord& record);

  // container_create.cc: the VM spec `name` of the sandbox's namespace;
  // FAILED_PRECONDITION when it does not exist or vmletd has no VM-spec
  // support.
  absl::StatusOr<vmspec::v1::VmSpec> FindBoundVmSpec(const SandboxRecord& sandbox,
                                                     std::string_view name);
  // vm_status.cc: the sandbox of a VM-spec API request, by id or by
  // namespace and name (the newest attempt); nullopt when there is none.
  absl::StatusOr<std::optional<SandboxRecord>> FindPod(std::string_view sandbox_id,
                                                       std::string_view ns,
                                                       std::string_view name);
  // The sandbox's newest container that is past CREATING, if any.
  std::optional<ContainerRecord> CurrentContainer(const std::string& sandbox_id);

  // Applies `requested` to the container's VM and records the resources
  // then in force: its fields that are zero or empty keep their recorded
  // values. Caller holds the container's lock.
  absl::Status ApplyResources(const ContainerRecord& record, std::string_view field,
                              const v1::LinuxContainerResources& requested);

  friend class StreamingRuntime;
  std::unique_ptr<streaming::Runtime> streaming_runtime_;
  streaming::Server* streaming_server_ = nullptr;

  const CriOptions options_;
  vmdriver::VmDriver* const driver_;
  network::PodNetwork* const network_;
  SandboxStore sandboxes_;
  ContainerStore containers_;
  std::unique_ptr<image::ImageStore> images_;  // Opened by Init.
  store::NameIndex sandbox_names_;
  store::NameIndex container_names_;
  KeyedMutex sandbox_locks_;
  KeyedMutex container_locks_;
  ContainerEventHub events_;
  StatsCollector stats_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace vmlet::cri

#endif  // VMLET_CRI_CRI_SERVICE_H_

// Construction, start-up reconciliation and VM events of the CRI service.
#include "cri/cri_service.h"

#include "base/file_util.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/sandbox_network.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

}  // namespace

CriService::CriService(CriOptions options, vmdriver::VmDriver* driver, network::PodNetwork* network)
    : options_(std::move(options)),
      driver_(driver),
      network_(network),
      sandboxes_("sandbox", StrCat(options_.state_dir, "/sandboxes")),
      containers_("container", StrCat(options_.state_dir, "/containers")),
      stats_(driver, options_.stats_interval) {
  streaming_runtime_ = NewStreamingRuntime(this);
  sandboxes_.SetObserver([this](const SandboxRecord* before, const SandboxRecord* after) {
    events_.OnSandboxChange(before, after);
  });
  containers_.SetObserver([this](const ContainerRecord* before, const ContainerRecord* after) {
    events_.OnContainerChange(before, after);
  });
  // The collector reads the ready pods' network namespaces with the VMs.
  stats_.SetNetnsLister([this] {
    std::vector<PodNetns> pods;
    for (const SandboxRecord& sandbox : sandboxes_.List([](const SandboxRecord& s) {
           return s.state() == state::v1::SANDBOX_STATE_READY && !s.network().netns_path().empty();
         })) {
      pods.push_back({sandbox.id(), sandbox.network().netns_path()});
    }
    return pods;
  });
}

CriService::~CriService() { Shutdown(); }

void CriService::Shutdown() {
  if (shut_down_.exchange(true)) return;
  // No VM event may reach this service once it is going away.
  driver_->Watch(nullptr);
  stats_.Stop();
  events_.Shutdown();
}

namespace {

template <typename Record, typename Store>
absl::StatusOr<std::optional<Locked<Record>>> LockIfExists(Store& store, KeyedMutex& locks,
                                                           std::string_view id_or_prefix) {
  absl::StatusOr<Record> found = store.Get(id_or_prefix);
  if (absl::IsNotFound(found.status())) return std::nullopt;
  VMLET_RETURN_IF_ERROR(found.status());
  KeyedMutex::Lock lock = locks.Acquire(found->id());
  absl::StatusOr<Record> current = store.Get(found->id());  // Fresh, under the lock.
  if (absl::IsNotFound(current.status())) return std::nullopt;
  VMLET_RETURN_IF_ERROR(current.status());
  return Locked<Record>{std::move(lock), *std::move(current)};
}

}  // namespace

absl::StatusOr<std::optional<Locked<SandboxRecord>>> CriService::LockSandboxIfExists(
    std::string_view id_or_prefix) {
  return LockIfExists<SandboxRecord>(sandboxes_, sandbox_locks_, id_or_prefix);
}

absl::StatusOr<std::optional<Locked<ContainerRecord>>> CriService::LockContainerIfExists(
    std::string_view id_or_prefix) {
  return LockIfExists<ContainerRecord>(containers_, container_locks_, id_or_prefix);
}

std::string CriService::SandboxDir(const std::string& id) const {
  return StrCat(options_.state_dir, "/pods/", id);
}

absl::Status CriService::Init() {
  VMLET_RETURN_IF_ERROR(MakeDirs(options_.state_dir, 0711));
  VMLET_ASSIGN_OR_RETURN(images_, image::ImageStore::Open({
                                      .dir = StrCat(options_.state_dir, "/images"),
                                      .registries = options_.registries,
                                      .translations = options_.image_translations,
                                      .local_images = options_.local_images,
                                      .client = options_.registry_client,
                                      // An image stays on disk while a container record names it.
                                      .in_use =
                                          [this](const std::string& image_id) {
                                            return !containers_
                                                        .List([&](const ContainerRecord& c) {
                                                          return c.image_ref() == image_id;
                                                        })
                                                        .empty();
                                          },
                                  }));
  VMLET_RETURN_IF_ERROR(MakeDirs(StrCat(options_.state_dir, "/pods"), 0700));
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> sandbox_warnings, sandboxes_.Load());
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> container_warnings, containers_.Load());
  for (const auto& warning : sandbox_warnings) kLog.Error("{}", warning);
  for (const auto& warning : container_warnings) kLog.Error("{}", warning);

  for (const SandboxRecord& sandbox : sandboxes_.List()) {
    VMLET_RETURN_IF_ERROR(
        sandbox_names_.Reserve(SandboxName(sandbox.config().metadata()), sandbox.id()));
  }
  for (const ContainerRecord& container : containers_.List()) {
    absl::StatusOr<SandboxRecord> sandbox = sandboxes_.Get(container.sandbox_id());
    if (!sandbox.ok()) {
      kLog.Warning("container {} belongs to sandbox {}, which has no record", container.id(),
                   container.sandbox_id());
      continue;
    }
    VMLET_RETURN_IF_ERROR(container_names_.Reserve(
        ContainerName(container.config().metadata(), sandbox->config().metadata()),
        container.id()));
  }
  // The loaded sandboxes' statuses, for the events of their containers.
  for (const SandboxRecord& sandbox : sandboxes_.List()) events_.OnSandboxChange(nullptr, &sandbox);
  driver_->Watch([this](const vmdriver::VmEvent& event) { OnVmEvent(event); });
  VMLET_RETURN_IF_ERROR(ReconcileContainers());
  VMLET_RETURN_IF_ERROR(ReconcileSandboxes());
  images_->Collect();  // Removed images whose containers went away meanwhile.
  if (options_.stats_interval > absl::ZeroDuration()) stats_.Start();
  kLog.Info("loaded {} sandboxes and {} containers from {}", sandboxes_.Size(), containers_.Size(),
            options_.state_dir);
  return absl::OkStatus();
}

absl::Status CriService::MarkNotReadyAndTearDown(const SandboxRecord& sandbox) {
  VMLET_ASSIGN_OR_RETURN(SandboxRecord updated,
                         sandboxes_.Update(sandbox.id(), [](SandboxRecord& r) {
                           r.set_state(state::v1::SANDBOX_STATE_NOTREADY);
                           return absl::OkStatus();
                         }));
  // A failed teardown (a CNI plugin's DEL, say) must not keep vmletd from
  // starting: StopPodSandbox and RemovePodSandbox try again.
  if (absl::Status status = TearDownSandboxNetwork(updated); !status.ok()) {
    kLog.Error("sandbox {}: {}", sandbox.id(), status.message());
  }
  return absl::OkStatus();
}

absl::Status CriService::ReconcileSandboxes() {
  for (const SandboxRecord& sandbox : sandboxes_.List()) {
    if (sandbox.state() == state::v1::SANDBOX_STATE_READY) {
      // Serve the VM's DHCP again. A sandbox whose namespace is gone (the
      // node restarted) cannot work any more: it is reported not ready, so
      // that the kubelet makes a new one.
      absl::StatusOr<network::PodNetworkConfig> config = PodNetworkConfigOf(sandbox);
      absl::Status restored = config.status();
      if (restored.ok()) restored = network_->Restore(*config, PodNetworkStateOf(sandbox));
      if (!restored.ok()) {
        kLog.Warning("sandbox {} lost its network ({}); marking it not ready", sandbox.id(),
                     restored.message());
        VMLET_RETURN_IF_ERROR(MarkNotReadyAndTearDown(sandbox));
      }
      continue;
    }
    if (sandbox.state() == state::v1::SANDBOX_STATE_NOTREADY) {
      // A StopPodSandbox cut short between its steps.
      VMLET_RETURN_IF_ERROR(MarkNotReadyAndTearDown(sandbox));
      continue;
    }
    if (sandbox.state() != state::v1::SANDBOX_STATE_CREATING) continue;
    // RunPodSandbox was interrupted: undo it so that the kubelet's retry
    // starts afresh.
    kLog.Warning("sandbox {} was being created when vmletd stopped; undoing it", sandbox.id());
    if (absl::Status torn_down = TearDownSandboxNetwork(sandbox); !torn_down.ok()) {
      // Keep it, visible, so that the kubelet's RemovePodSandbox retries.
      kLog.Error("sandbox {}: {}; keeping it as not ready", sandbox.id(), torn_down.message());
      VMLET_RETURN_IF_ERROR(MarkNotReadyAndTearDown(sandbox));
      continue;
    }
    VMLET_RETURN_IF_ERROR(RemoveTree(SandboxDir(sandbox.id())));
    VMLET_RETURN_IF_ERROR(sandboxes_.Delete(sandbox.id()));
    sandbox_names_.Release(SandboxName(sandbox.config().metadata()), sandbox.id());
  }
  return absl::OkStatus();
}

absl::Status CriService::ReconcileContainers() {
  absl::Status reachable = driver_->CheckReachable();
  if (!reachable.ok()) {
    kLog.Warning("VM driver {} unreachable; container states are not reconciled: {}",
                 driver_->Name(), reachable.message());
    return absl::OkStatus();
  }
  // Domains of vmlet's that no record knows (their CreateContainer never
  // recorded them, or their records were lost) are removed.
  VMLET_ASSIGN_OR_RETURN(std::vector<vmdriver::VmInfo> vms, driver_->List());
  for (const vmdriver::VmInfo& vm : vms) {
    if (containers_.Get(vm.id).ok()) continue;
    kLog.Warning("VM {} has no container record; removing it", vm.id);
    VMLET_RETURN_IF_ERROR(driver_->Remove(vm.id));
  }
  for (const ContainerRecord& container : containers_.List()) {
    const std::string& id = container.id();
    switch (container.state()) {
      case state::v1::CONTAINER_STATE_CREATING: {
        kLog.Warning("container {} was being created when vmletd stopped; undoing it", id);
        VMLET_RETURN_IF_ERROR(driver_->Remove(id));
        RemoveContainerSeed(container);  // Written before the VM was defined.
        VMLET_RETURN_IF_ERROR(containers_.Delete(id));
        absl::StatusOr<SandboxRecord> sandbox = sandboxes_.Get(container.sandbox_id());
        if (sandbox.ok()) {
          container_names_.Release(
              ContainerName(container.config().metadata(), sandbox->config().metadata()), id);
        }
        break;
      }
      case state::v1::CONTAINER_STATE_CREATED:
      case state::v1::CONTAINER_STATE_RUNNING: {
        absl::StatusOr<vmdriver::VmInfo> info = driver_->Inspect(id);
        if (absl::IsNotFound(info.status())) {
          info = vmdriver::VmInfo{.id = id,
                                  .state = vmdriver::VmState::kExited,
                                  .finished_at = NowNanos(),
                                  .exit_code = 255,
                                  .reason = "Unknown",
                                  .message = "the VM disappeared while vmletd was not running"};
        }
        VMLET_RETURN_IF_ERROR(info.status());
        VMLET_RETURN_IF_ERROR(ApplyVmInfo(id, *info));
        break;
      }
      default:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status CriService::ApplyVmInfo(const std::string& container_id,
                                     const vmdriver::VmInfo& info) {
  absl::StatusOr<ContainerRecord> updated =
      containers_.Update(container_id, [&info](ContainerRecord& r) {
        switch (info.state) {
          case vmdriver::VmState::kCreated:
            break;
          case vmdriver::VmState::kRunning:
            if (r.state() == state::v1::CONTAINER_STATE_CREATED) {
              r.set_state(state::v1::CONTAINER_STATE_RUNNING);
              // A driver that adopted the VM after a restart of vmletd
              // does not know when it started (StartContainer was cut
              // short after the resume): now is the best guess, and a
              // running container always has a start time.
              r.set_started_at(info.started_at != 0 ? info.started_at : NowNanos());
            }
            break;
          case vmdriver::VmState::kExited:
            if (r.state() == state::v1::CONTAINER_STATE_CREATED ||
                r.state() == state::v1::CONTAINER_STATE_RUNNING) {
              r.set_state(state::v1::CONTAINER_STATE_EXITED);
              if (r.started_at() == 0) r.set_started_at(info.started_at);
              r.set_finished_at(info.finished_at);
              r.set_exit_code(info.exit_code);
              r.set_reason(info.reason);
              r.set_message(info.message);
            }
            break;
        }
        return absl::OkStatus();
      });
  if (absl::IsNotFound(updated.status())) return absl::OkStatus();  // Removed meanwhile.
  return updated.status();
}

void CriService::OnVmEvent(const vmdriver::VmEvent& event) {
  kLog.Debug("VM {} is {}", event.info.id, vmdriver::VmStateName(event.info.state));
  absl::Status status = ApplyVmInfo(event.info.id, event.info);
  if (!status.ok()) {
    kLog.Error("recording state {} of container {}: {}", vmdriver::VmStateName(event.info.state),
               event.info.id, status.message());
  }
}

}  // namespace vmlet::cri

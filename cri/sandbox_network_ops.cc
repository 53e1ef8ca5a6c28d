// A sandbox's network and cloud-init seed, set up in RunPodSandbox and torn
// down in StopPodSandbox / RemovePodSandbox (and on restart for sandboxes
// whose creation was interrupted).
#include "annotations/annotations.h"
#include "base/fault_point.h"
#include "base/file_util.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/cri_service.h"
#include "cri/sandbox_network.h"
#include "network/cloud_init.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

// cloud-init input from the pod's annotations or its VM spec into `seed`.
void AddCloudInit(const vmspec::v1::CloudInit& cloud_init, network::CloudInitSeed* seed) {
  seed->user_data = cloud_init.user_data();
  seed->meta_data = cloud_init.meta_data();
  seed->network_config = cloud_init.network_config();
  seed->ssh_authorized_keys.assign(cloud_init.ssh_authorized_keys().begin(),
                                   cloud_init.ssh_authorized_keys().end());
}

}  // namespace

absl::Status CriService::SetUpSandboxNetwork(const SandboxRecord& record) {
  const std::string& id = record.id();
  VMLET_ASSIGN_OR_RETURN(network::PodNetworkConfig config, PodNetworkConfigOf(record));
  network::PodNetworkState state;
  // Each step is recorded before it is taken (intent first).
  auto checkpoint = [&](const network::PodNetworkState& current) {
    return Annotate(sandboxes_
                        .Update(id,
                                [&current](SandboxRecord& r) {
                                  SetPodNetworkState(current, &r);
                                  return absl::OkStatus();
                                })
                        .status(),
                    StrCat("recording the network of sandbox \"", id, "\""));
  };
  absl::Status set_up = network_->Setup(config, &state, checkpoint);
  // What is left after a failure (normally nothing), or the whole network.
  absl::Status recorded = checkpoint(state);
  VMLET_RETURN_IF_ERROR(set_up);
  VMLET_RETURN_IF_ERROR(recorded);
  VMLET_FAULT_POINT("run_pod_sandbox.after_network_recorded");
  const std::string seed_path = StrCat(SandboxDir(id), "/seed.iso");
  network::CloudInitSeed seed = network::PodNetwork::Seed(config, state);
  // The pod's cloud-init annotations (RunPodSandbox checked them).
  VMLET_ASSIGN_OR_RETURN(annotations::VmTunables tunables,
                         annotations::ParseVmTunables({record.config().annotations().begin(),
                                                       record.config().annotations().end()},
                                                      "config.annotations"));
  AddCloudInit(tunables.machine.cloud_init(), &seed);
  VMLET_RETURN_IF_ERROR(Annotate(network::WriteNoCloudSeed(seed_path, seed),
                                 StrCat("writing the cloud-init seed of sandbox \"", id, "\"")));
  VMLET_FAULT_POINT("run_pod_sandbox.after_seed");
  return sandboxes_
      .Update(id,
              [&seed_path](SandboxRecord& r) {
                r.set_seed_path(seed_path);
                return absl::OkStatus();
              })
      .status();
}

absl::Status CriService::TearDownSandboxNetwork(const SandboxRecord& record) {
  network::PodNetworkState state = PodNetworkStateOf(record);
  if (state.netns_path.empty() && state.cni_config.empty() && state.tap.empty()) {
    return absl::OkStatus();
  }
  absl::StatusOr<network::PodNetworkConfig> config = PodNetworkConfigOf(record);
  if (!config.ok()) {
    // Only bandwidth annotations can fail to parse, and RunPodSandbox
    // checked them; tear down without them.
    config = network::PodNetworkConfig{.sandbox_id = record.id(),
                                       .pod_namespace = record.config().metadata().namespace_(),
                                       .pod_name = record.config().metadata().name(),
                                       .pod_uid = record.config().metadata().uid()};
  }
  absl::Status torn_down = network_->Teardown(*config, &state);
  // Whatever got undone is recorded, also when a later step failed.
  VMLET_RETURN_IF_ERROR(sandboxes_
                            .Update(record.id(),
                                    [&state](SandboxRecord& r) {
                                      SetPodNetworkState(state, &r);
                                      return absl::OkStatus();
                                    })
                            .status());
  return Annotate(torn_down, StrCat("tearing down the network of sandbox \"", record.id(), "\""));
}

absl::Status CriService::WriteContainerSeed(const SandboxRecord& sandbox, const std::string& path,
                                            const vmspec::v1::CloudInit& cloud_init) {
  VMLET_ASSIGN_OR_RETURN(network::PodNetworkConfig config, PodNetworkConfigOf(sandbox));
  network::CloudInitSeed seed = network::PodNetwork::Seed(config, PodNetworkStateOf(sandbox));
  AddCloudInit(cloud_init, &seed);
  return Annotate(network::WriteNoCloudSeed(path, seed),
                  StrCat("writing the cloud-init seed of a VM of sandbox \"", sandbox.id(), "\""));
}

void CriService::RemoveContainerSeed(const ContainerRecord& record) {
  if (record.seed_path().empty()) return;
  if (absl::Status status = RemoveFileIfExists(record.seed_path()); !status.ok()) {
    kLog.Error("container {}: removing its cloud-init seed: {}", record.id(), status.message());
  }
}

}  // namespace vmlet::cri

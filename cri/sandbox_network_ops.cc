// A sandbox's network and cloud-init seed, set up in RunPodSandbox and torn
// down in StopPodSandbox / RemovePodSandbox (and on restart for sandboxes
// whose creation was interrupted).
#include "base/file_util.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/cri_service.h"
#include "cri/sandbox_network.h"
#include "network/cloud_init.h"

namespace vmlet::cri {

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
  const std::string seed_path = StrCat(SandboxDir(id), "/seed.iso");
  VMLET_RETURN_IF_ERROR(
      Annotate(network::WriteNoCloudSeed(seed_path, network::PodNetwork::Seed(config, state)),
               StrCat("writing the cloud-init seed of sandbox \"", id, "\"")));
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

}  // namespace vmlet::cri

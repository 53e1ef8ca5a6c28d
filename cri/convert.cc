#include "cri/convert.h"

#include <google/protobuf/util/json_util.h>

#include "base/str_util.h"

namespace vmlet::cri {

using state::v1::ContainerState;
using state::v1::SandboxState;

std::string SandboxName(const v1::PodSandboxMetadata& metadata) {
  return StrCat(metadata.name(), "_", metadata.namespace_(), "_", metadata.uid(), "_",
                metadata.attempt());
}

std::string ContainerName(const v1::ContainerMetadata& container,
                          const v1::PodSandboxMetadata& sandbox) {
  return StrCat(container.name(), "_", sandbox.name(), "_", sandbox.namespace_(), "_",
                sandbox.uid(), "_", container.attempt());
}

bool IsVisible(const SandboxRecord& record) {
  return record.state() == SandboxState::SANDBOX_STATE_READY ||
         record.state() == SandboxState::SANDBOX_STATE_NOTREADY;
}

bool IsVisible(const ContainerRecord& record) {
  return record.state() == ContainerState::CONTAINER_STATE_CREATED ||
         record.state() == ContainerState::CONTAINER_STATE_RUNNING ||
         record.state() == ContainerState::CONTAINER_STATE_EXITED;
}

v1::PodSandboxState ToCriState(SandboxState state) {
  return state == SandboxState::SANDBOX_STATE_READY ? v1::SANDBOX_READY : v1::SANDBOX_NOTREADY;
}

v1::ContainerState ToCriState(ContainerState state) {
  switch (state) {
    case ContainerState::CONTAINER_STATE_CREATED:
      return v1::CONTAINER_CREATED;
    case ContainerState::CONTAINER_STATE_RUNNING:
      return v1::CONTAINER_RUNNING;
    case ContainerState::CONTAINER_STATE_EXITED:
      return v1::CONTAINER_EXITED;
    default:
      return v1::CONTAINER_UNKNOWN;
  }
}

std::string_view StateName(SandboxState state) {
  switch (state) {
    case SandboxState::SANDBOX_STATE_CREATING:
      return "creating";
    case SandboxState::SANDBOX_STATE_READY:
      return "ready";
    case SandboxState::SANDBOX_STATE_NOTREADY:
      return "not ready";
    default:
      return "unknown";
  }
}

std::string_view StateName(ContainerState state) {
  switch (state) {
    case ContainerState::CONTAINER_STATE_CREATING:
      return "creating";
    case ContainerState::CONTAINER_STATE_CREATED:
      return "created";
    case ContainerState::CONTAINER_STATE_RUNNING:
      return "running";
    case ContainerState::CONTAINER_STATE_EXITED:
      return "exited";
    default:
      return "unknown";
  }
}

v1::PodSandbox ToCriSandbox(const SandboxRecord& record) {
  v1::PodSandbox out;
  out.set_id(record.id());
  *out.mutable_metadata() = record.config().metadata();
  out.set_state(ToCriState(record.state()));
  out.set_created_at(record.created_at());
  *out.mutable_labels() = record.config().labels();
  *out.mutable_annotations() = record.config().annotations();
  out.set_runtime_handler(record.runtime_handler());
  return out;
}

v1::PodSandboxStatus ToCriSandboxStatus(const SandboxRecord& record) {
  v1::PodSandboxStatus out;
  out.set_id(record.id());
  *out.mutable_metadata() = record.config().metadata();
  out.set_state(ToCriState(record.state()));
  out.set_created_at(record.created_at());
  // Without an address `network` stays unset, which the kubelet accepts
  // (an empty ip in a set `network` would make it recreate the sandbox).
  const auto& ips = record.network().ips();
  if (!ips.empty()) {
    out.mutable_network()->set_ip(ips[0]);
    for (int i = 1; i < ips.size(); ++i)
      out.mutable_network()->add_additional_ips()->set_ip(ips[i]);
  }
  v1::NamespaceOption* namespaces = out.mutable_linux()->mutable_namespaces()->mutable_options();
  *namespaces = record.config().linux().security_context().namespace_options();
  namespaces->set_network(v1::POD);  // Every VM pod has a network namespace of its own.
  *out.mutable_labels() = record.config().labels();
  *out.mutable_annotations() = record.config().annotations();
  out.set_runtime_handler(record.runtime_handler());
  return out;
}

v1::Container ToCriContainer(const ContainerRecord& record) {
  v1::Container out;
  out.set_id(record.id());
  out.set_pod_sandbox_id(record.sandbox_id());
  *out.mutable_metadata() = record.config().metadata();
  *out.mutable_image() = record.config().image();
  out.set_image_ref(record.image_ref());
  out.set_state(ToCriState(record.state()));
  out.set_created_at(record.created_at());
  *out.mutable_labels() = record.config().labels();
  *out.mutable_annotations() = record.config().annotations();
  out.set_image_id(record.image_ref());
  return out;
}

v1::ContainerStatus ToCriContainerStatus(const ContainerRecord& record) {
  v1::ContainerStatus out;
  out.set_id(record.id());
  *out.mutable_metadata() = record.config().metadata();
  out.set_state(ToCriState(record.state()));
  out.set_created_at(record.created_at());
  out.set_started_at(record.started_at());
  out.set_finished_at(record.finished_at());
  out.set_exit_code(record.exit_code());
  *out.mutable_image() = record.config().image();
  out.set_image_ref(record.image_ref());
  out.set_reason(record.reason());
  out.set_message(record.message());
  *out.mutable_labels() = record.config().labels();
  *out.mutable_annotations() = record.config().annotations();
  *out.mutable_mounts() = record.config().mounts();
  out.set_log_path(record.log_path());
  if (record.config().linux().has_resources()) {
    *out.mutable_resources()->mutable_linux() = record.config().linux().resources();
  }
  out.set_image_id(record.image_ref());
  return out;
}

void AddVerboseInfo(const google::protobuf::Message& record,
                    google::protobuf::Map<std::string, std::string>* info) {
  std::string json;
  if (google::protobuf::util::MessageToJsonString(record, &json).ok()) (*info)["info"] = json;
}

bool MatchesLabels(const google::protobuf::Map<std::string, std::string>& labels,
                   const google::protobuf::Map<std::string, std::string>& selector) {
  for (const auto& [key, value] : selector) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

}  // namespace vmlet::cri

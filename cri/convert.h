// Conversions between vmletd's records and CRI messages, the names under
// which sandboxes and containers are reserved, and list filters.
#ifndef VMLET_CRI_CONVERT_H_
#define VMLET_CRI_CONVERT_H_

#include <string>

#include "cri/cri_service.h"

namespace vmlet::cri {

// "<name>_<namespace>_<uid>_<attempt>", unique per pod attempt.
std::string SandboxName(const v1::PodSandboxMetadata& metadata);
// "<container>_<pod>_<namespace>_<uid>_<attempt>".
std::string ContainerName(const v1::ContainerMetadata& container,
                          const v1::PodSandboxMetadata& sandbox);

// Whether the record is shown to the kubelet (intent records are not).
bool IsVisible(const SandboxRecord& record);
bool IsVisible(const ContainerRecord& record);

v1::PodSandboxState ToCriState(state::v1::SandboxState state);
v1::ContainerState ToCriState(state::v1::ContainerState state);
std::string_view StateName(state::v1::SandboxState state);
std::string_view StateName(state::v1::ContainerState state);

v1::PodSandbox ToCriSandbox(const SandboxRecord& record);
v1::PodSandboxStatus ToCriSandboxStatus(const SandboxRecord& record);
v1::Container ToCriContainer(const ContainerRecord& record);
v1::ContainerStatus ToCriContainerStatus(const ContainerRecord& record);

// Adds the record as JSON under "info", as verbose status calls answer.
void AddVerboseInfo(const google::protobuf::Message& record,
                    google::protobuf::Map<std::string, std::string>* info);

// Every key of `selector` is in `labels` with the same value.
bool MatchesLabels(const google::protobuf::Map<std::string, std::string>& labels,
                   const google::protobuf::Map<std::string, std::string>& selector);

}  // namespace vmlet::cri

#endif  // VMLET_CRI_CONVERT_H_

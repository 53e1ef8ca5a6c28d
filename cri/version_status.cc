// Version, Status and UpdateRuntimeConfig.
#include "base/logging.h"
#include "base/str_util.h"
#include "cri/cri_service.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

// The kubelet requires exactly this version string.
constexpr char kRuntimeVersion[] = "0.1.0";

v1::RuntimeCondition Condition(std::string type, const absl::Status& status,
                               std::string_view reason) {
  v1::RuntimeCondition condition;
  condition.set_type(std::move(type));
  condition.set_status(status.ok());
  if (!status.ok()) {
    condition.set_reason(std::string(reason));
    condition.set_message(std::string(status.message()));
  }
  return condition;
}

}  // namespace

absl::Status CriService::Version(const v1::VersionRequest& /*req*/, v1::VersionResponse* resp) {
  resp->set_version(kRuntimeVersion);
  resp->set_runtime_name("vmlet");
  resp->set_runtime_version(kRuntimeVersion);
  resp->set_runtime_api_version("v1");
  return absl::OkStatus();
}

absl::Status CriService::Status(const v1::StatusRequest& req, v1::StatusResponse* resp) {
  absl::Status driver = driver_->CheckReachable();
  *resp->mutable_status()->add_conditions() =
      Condition("RuntimeReady", driver, "VmDriverUnavailable");
  *resp->mutable_status()->add_conditions() =
      Condition("NetworkReady", network_->Ready(), "NetworkPluginNotReady");
  for (std::string_view handler : {"", "vmlet"}) {
    v1::RuntimeHandler* entry = resp->add_runtime_handlers();
    entry->set_name(std::string(handler));
    entry->mutable_features();  // VMs support neither feature.
  }
  resp->mutable_features();
  if (req.verbose()) {
    (*resp->mutable_info())["vmDriver"] = StrCat("\"", driver_->Name(), "\"");
    (*resp->mutable_info())["sandboxes"] = StrCat(sandboxes_.Size());
    (*resp->mutable_info())["containers"] = StrCat(containers_.Size());
    for (const auto& [key, value] : driver_->StatusInfo()) {
      std::string quoted = "\"";
      for (char c : value) {
        if (c == '"' || c == '\\') quoted.push_back('\\');
        quoted.push_back(c);
      }
      (*resp->mutable_info())[key] = quoted + "\"";
    }
  }
  return absl::OkStatus();
}

absl::Status CriService::UpdateRuntimeConfig(const v1::UpdateRuntimeConfigRequest& req,
                                             v1::UpdateRuntimeConfigResponse* /*resp*/) {
  // The kubelet sends the node's pod CIDR here. vmletd delegates addressing
  // to the CNI configuration, so it only notes the value (as CRI-O does).
  kLog.Info("kubelet reports pod CIDR \"{}\"", req.runtime_config().network_config().pod_cidr());
  return absl::OkStatus();
}

}  // namespace vmlet::cri

// Version, Status, UpdateRuntimeConfig and RuntimeConfig.
#include <map>

#include <fmt/format.h>

#include "absl/time/time.h"
#include "base/logging.h"
#include "base/str_util.h"
#include "cri/convert.h"
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

// `text` as a JSON string (the CRI's verbose info values are JSON).
std::string Quoted(std::string_view text) {
  std::string quoted = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      quoted.push_back('\\');
      quoted.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      StrAppend(&quoted, fmt::format("\\u{:04x}", c));
    } else {
      quoted.push_back(static_cast<char>(c));
    }
  }
  return quoted + "\"";
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
    (*resp->mutable_info())["vmDriver"] = Quoted(driver_->Name());
    (*resp->mutable_info())["sandboxes"] = StrCat(sandboxes_.Size());
    (*resp->mutable_info())["containers"] = StrCat(containers_.Size());
    std::string states = "{";
    for (const auto& [state, count] : ContainersByState()) {
      StrAppend(&states, states.size() > 1 ? "," : "", "\"", state, "\":", count);
    }
    (*resp->mutable_info())["containersByState"] = states + "}";
    (*resp->mutable_info())["statsIntervalSeconds"] =
        StrCat(absl::ToDoubleSeconds(stats_.interval()));
    (*resp->mutable_info())["statsCollections"] = StrCat(stats_.collections());
    if (absl::Status stats_error = stats_.last_error(); !stats_error.ok()) {
      (*resp->mutable_info())["statsError"] = Quoted(std::string(stats_error.message()));
    }
    (*resp->mutable_info())["eventSubscribers"] = StrCat(events_.subscribers());
    (*resp->mutable_info())["cgroupDriver"] = Quoted(options_.cgroup_driver);
    for (const auto& [key, value] : driver_->StatusInfo())
      (*resp->mutable_info())[key] = Quoted(value);
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

std::map<std::string, int> CriService::ContainersByState() const {
  std::map<std::string, int> by_state;
  for (const ContainerRecord& container : containers_.List()) {
    ++by_state[std::string(StateName(container.state()))];
  }
  return by_state;
}

absl::Status CriService::RuntimeConfig(const v1::RuntimeConfigRequest& /*req*/,
                                       v1::RuntimeConfigResponse* resp) {
  resp->mutable_linux()->set_cgroup_driver(options_.cgroup_driver == "systemd" ? v1::SYSTEMD
                                                                               : v1::CGROUPFS);
  return absl::OkStatus();
}

}  // namespace vmlet::cri

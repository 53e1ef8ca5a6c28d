#include "vmdriver/libvirt/nic_hotplug.h"

#include <libvirt/libvirt-qemu.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/tap.h"
#include "vmdriver/libvirt/libvirt_errors.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using Json = nlohmann::json;

// PCI slots from the top of the i440fx/q35 root bus down, far from the
// slots libvirt hands out from the bottom up, so that the guest sees the
// same slot (and interface name) every boot.
constexpr int kFirstNicSlot = 0x1e;

// Runs one QMP command, passing `fd` along when it is >= 0. The QMP error,
// if any, becomes the status.
absl::Status Qmp(virDomainPtr domain, const std::string& command, int fd, std::string_view what) {
  char* result = nullptr;
  int files[1] = {fd};
  int rc =
      virDomainQemuMonitorCommandWithFiles(domain, command.c_str(), fd >= 0 ? 1 : 0,
                                           fd >= 0 ? files : nullptr, nullptr, nullptr, &result, 0);
  if (rc < 0) return LastError(what);
  ScopeGuard free_result([result] { std::free(result); });
  Json reply = Json::parse(result, nullptr, /*allow_exceptions=*/false);
  if (reply.is_object() && reply.contains("error")) {
    std::string message = reply["error"].value("desc", std::string(result));
    return absl::InternalError(StrCat(what, ": QEMU said: ", message));
  }
  return absl::OkStatus();
}

// The monitor's name for queue `queue` of NIC `index`'s tap.
std::string FdName(int index, int queue) {
  return queue == 0 ? StrCat("vmlet-tap", index) : StrCat("vmlet-tap", index, "q", queue);
}

}  // namespace

std::string NetdevAddCommand(int index, const std::vector<std::string>& fd_names) {
  Json arguments = {{"type", "tap"}, {"id", StrCat("vmletnet", index)}};
  if (fd_names.size() == 1) {
    arguments["fd"] = fd_names.front();
  } else {
    arguments["fds"] = absl::StrJoin(fd_names, ":");  // One per queue.
  }
  Json command = {{"execute", "netdev_add"}, {"arguments", arguments}};
  return command.dump();
}

std::string NetdevAddCommand(int index, const std::string& fd_name) {
  return NetdevAddCommand(index, std::vector<std::string>{fd_name});
}

std::string DeviceAddCommand(int index, const NetworkInterface& nic, const Nic& settings,
                             bool pcie) {
  const std::string driver = settings.model == "virtio" ? "virtio-net-pci" : settings.model;
  Json arguments = {{"driver", driver},
                    {"id", StrCat("vmletnic", index)},
                    {"netdev", StrCat("vmletnet", index)},
                    {"mac", settings.mac.empty() ? nic.mac : settings.mac}};
  if (pcie) {
    arguments["bus"] = StrCat(kNicPortAliasPrefix, index);
  } else {
    arguments["bus"] = "pci.0";
    arguments["addr"] = fmt::format("{:#x}", kFirstNicSlot - index);
  }
  if (settings.queues > 1) {
    arguments["mq"] = true;
    arguments["vectors"] = 2 * settings.queues + 2;
  }
  Json command = {{"execute", "device_add"}, {"arguments", arguments}};
  return command.dump();
}

std::string DeviceAddCommand(int index, const NetworkInterface& nic) {
  return DeviceAddCommand(index, nic, Nic{.index = index}, /*pcie=*/false);
}

absl::Status PlugNics(virDomainPtr domain, const std::vector<NetworkInterface>& nics,
                      const std::vector<Nic>& settings, bool pcie) {
  for (size_t i = 0; i < nics.size(); ++i) {
    const NetworkInterface& nic = nics[i];
    const int index = static_cast<int>(i);
    const Nic nic_settings = i < settings.size() ? settings[i] : Nic{.index = index};
    // One descriptor per queue pair, each passed to QEMU by name.
    VMLET_ASSIGN_OR_RETURN(
        std::vector<int> fds,
        network::OpenTapQueuesInNetns(nic.netns_path, nic.tap, std::max(1, nic_settings.queues)));
    ScopeGuard close_fds([&fds] {
      for (int fd : fds) ::close(fd);
    });
    std::vector<std::string> fd_names;
    for (size_t queue = 0; queue < fds.size(); ++queue) {
      fd_names.push_back(FdName(index, static_cast<int>(queue)));
      Json getfd = {{"execute", "getfd"}, {"arguments", {{"fdname", fd_names.back()}}}};
      VMLET_RETURN_IF_ERROR(Qmp(domain, getfd.dump(), fds[queue],
                                StrCat("passing tap \"", nic.tap, "\" to QEMU")));
    }
    VMLET_RETURN_IF_ERROR(Qmp(domain, NetdevAddCommand(index, fd_names), -1,
                              StrCat("adding the network backend of tap \"", nic.tap, "\"")));
    VMLET_RETURN_IF_ERROR(Qmp(domain, DeviceAddCommand(index, nic, nic_settings, pcie), -1,
                              StrCat("adding NIC ", nic.mac, " to the VM")));
  }
  return absl::OkStatus();
}

}  // namespace vmlet::vmdriver::libvirt

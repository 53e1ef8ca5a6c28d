// The checks of the software vmletd needs: its config, KVM, QEMU, UEFI
// firmware, libvirt and the CNI network. The node's directories, sockets and
// kernel settings are in doctor_host.cc.
#include "cmd/vmletctl/doctor_checks.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/time/time.h"
#include "base/process.h"
#include "base/str_util.h"
#include "network/cni.h"
#include "vmdriver/accelerator.h"

namespace vmlet::ctl::doctor {
namespace {

constexpr char kQemu[] = "qemu-system-x86_64";

std::string ConfigSummary(const Config& config) {
  return StrCat("accelerator ", AcceleratorName(config.accelerator), ", pod_network ",
                config.pod_network);
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// The first line of `text`, without trailing blanks.
std::string FirstLine(std::string_view text) {
  std::string line(text.substr(0, text.find('\n')));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

// "9.0.0" from libvirt's encoding major * 1000000 + minor * 1000 + release.
std::string LibvirtVersion(unsigned long version) {
  return StrCat(version / 1000000, ".", (version / 1000) % 1000, ".", version % 1000);
}

void IgnoreLibvirtError(void* /*user_data*/, virErrorPtr /*error*/) {}

// The type of a plugin's "ipam" object, or "" when it has none.
std::string IpamType(const std::string& plugin_json) {
  nlohmann::json plugin = nlohmann::json::parse(plugin_json, nullptr, /*allow_exceptions=*/false);
  if (!plugin.is_object()) return "";
  auto ipam = plugin.find("ipam");
  if (ipam == plugin.end() || !ipam->is_object()) return "";
  auto type = ipam->find("type");
  if (type == ipam->end() || !type->is_string()) return "";
  return type->get<std::string>();
}

std::string JoinDirs(const std::vector<std::string>& dirs) {
  std::string out;
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (i > 0) out += i + 1 == dirs.size() ? " or " : ", ";
    out += dirs[i];
  }
  return out.empty() ? "(no directory)" : out;
}

}  // namespace

std::string_view SeverityName(Severity severity) {
  switch (severity) {
    case Severity::kOk:
      return "ok";
    case Severity::kInfo:
      return "info";
    case Severity::kWarn:
      return "warn";
    case Severity::kFail:
      return "FAIL";
  }
  return "FAIL";
}

Finding Ok(std::string check, std::string message) {
  return {std::move(check), Severity::kOk, std::move(message), ""};
}

Finding Info(std::string check, std::string message) {
  return {std::move(check), Severity::kInfo, std::move(message), ""};
}

Finding Warn(std::string check, std::string message, std::string fix) {
  return {std::move(check), Severity::kWarn, std::move(message), std::move(fix)};
}

Finding Fail(std::string check, std::string message, std::string fix) {
  return {std::move(check), Severity::kFail, std::move(message), std::move(fix)};
}

ConfigCheck CheckConfig(const std::string& path, bool named) {
  if (!named && ::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
    Config defaults;
    return {Info("config", StrCat(path, " does not exist: vmletd uses the defaults (",
                                  ConfigSummary(defaults), ")")),
            defaults};
  }
  absl::StatusOr<Config> config = LoadConfig(path, /*must_exist=*/true);
  if (!config.ok()) {
    return {Fail("config",
                 StrCat(ToStd(config.status().message()), "; the other checks use the defaults"),
                 absl::IsNotFound(config.status())
                     ? "pass the file vmletd reads (its --config) with --config"
                     : StrCat("correct ", path,
                              " (every key and its values: docs/configuration.md); vmletd "
                              "refuses to start with it")),
            Config{}};
  }
  return {Ok("config", StrCat(path, " loaded (", ConfigSummary(*config), ")")), *config};
}

bool WouldUseKvm(Accelerator accelerator, const std::string& device) {
  if (accelerator == Accelerator::kTcg) return false;
  return accelerator == Accelerator::kKvm || vmdriver::CheckKvm(device).ok();
}

Finding CheckKvm(Accelerator accelerator, const std::string& config_path,
                 const std::string& device) {
  absl::Status kvm = vmdriver::CheckKvm(device);
  if (accelerator == Accelerator::kTcg) {
    return Info("kvm", StrCat(device, " not used: ", config_path,
                              " sets accelerator tcg (software emulation)",
                              kvm.ok() ? StrCat("; ", device, " would work") : ""));
  }
  if (kvm.ok()) {
    return Ok("kvm", StrCat(device, " opens and answers the KVM API; VMs run under KVM"));
  }
  constexpr char kFix[] =
      "load kvm_intel or kvm_amd (modprobe kvm_intel), enable VT-x/AMD-V in the firmware (nested "
      "virtualisation on a VM), and add vmletd's user to group kvm";
  if (accelerator == Accelerator::kAuto) {
    return Warn("kvm",
                StrCat("KVM cannot be used (", ToStd(kvm.message()),
                       "): VMs run under TCG, software emulation, much slower"),
                kFix);
  }
  return Fail("kvm",
              StrCat("KVM cannot be used (", ToStd(kvm.message()), ") but ", config_path,
                     " sets accelerator kvm: every VM fails to start"),
              StrCat(kFix, "; or set \"accelerator: tcg\" in ", config_path));
}

Finding CheckQemu(std::string* path) {
  path->clear();
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("PATH"); env != nullptr) {
    std::string_view rest = env;
    while (!rest.empty()) {
      size_t colon = rest.find(':');
      std::string_view dir = rest.substr(0, colon);
      if (!dir.empty()) dirs.emplace_back(dir);
      rest = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
    }
  }
  dirs.push_back("/usr/bin");
  for (const std::string& dir : dirs) {
    std::string candidate = StrCat(dir, "/", kQemu);
    if (IsExecutableFile(candidate)) {
      *path = candidate;
      break;
    }
  }
  if (path->empty()) {
    return Fail("qemu", StrCat(kQemu, " is not on $PATH nor in /usr/bin: libvirt cannot run VMs"),
                "apt-get install qemu-system-x86");
  }
  absl::StatusOr<ProcessResult> version = RunProcess({*path, "-version"}, absl::Seconds(10));
  if (!version.ok() || version->exit_code != 0) {
    return Fail(
        "qemu",
        StrCat(*path, " -version failed: ",
               version.ok() ? FirstLine(version->output) : ToStd(version.status().message())),
        "reinstall QEMU: apt-get install --reinstall qemu-system-x86");
  }
  return Ok("qemu", StrCat(*path, ": ", FirstLine(version->output)));
}

Finding CheckOvmf(const std::vector<std::string>& candidates) {
  for (const std::string& file : candidates) {
    if (::access(file.c_str(), R_OK) == 0) return Ok("ovmf", StrCat("UEFI firmware ", file));
  }
  return Warn("ovmf",
              StrCat("no UEFI firmware (", JoinDirs(candidates),
                     "): VMs whose image asks for UEFI firmware cannot start; BIOS and "
                     "direct-kernel VMs are not affected"),
              "apt-get install ovmf");
}

Finding CheckLibvirt(const std::string& uri) {
  virSetErrorFunc(nullptr, IgnoreLibvirtError);
  virConnectPtr connection = virConnectOpen(uri.c_str());
  if (connection == nullptr) {
    const char* error = virGetLastErrorMessage();
    return Fail("libvirt",
                StrCat("cannot connect to ", uri, ": ", error != nullptr ? error : "unknown error",
                       "; vmletd cannot run VMs (RuntimeReady is false)"),
                "start libvirtd (systemctl enable --now libvirtd, or virtqemud.socket with the "
                "modular daemons), or correct libvirt_uri in the config");
  }
  unsigned long lib_version = 0;
  unsigned long hv_version = 0;
  std::string message = StrCat(uri, ": libvirt ");
  message += virConnectGetLibVersion(connection, &lib_version) == 0 ? LibvirtVersion(lib_version)
                                                                    : "(version unknown)";
  const char* type = virConnectGetType(connection);
  if (virConnectGetVersion(connection, &hv_version) == 0 && hv_version != 0) {
    StrAppend(&message, ", ", type != nullptr ? type : "hypervisor", " ",
              LibvirtVersion(hv_version));
  }
  virConnectClose(connection);
  return Ok("libvirt", message);
}

Finding CheckCni(const Config& config, const std::string& config_path) {
  if (config.pod_network == "none") {
    return Info("cni", StrCat("not used: ", config_path,
                              " sets pod_network none (pods get loopback only)"));
  }
  absl::StatusOr<network::CniConfig> cni = network::LoadCniConfig(config.cni_conf_dir);
  if (!cni.ok()) {
    return Fail("cni",
                StrCat(ToStd(cni.status().message()),
                       ": NetworkReady stays false and the kubelet keeps the node NotReady"),
                StrCat("put a network configuration list in ", config.cni_conf_dir,
                       " (an example: contrib/cni/10-vmlet.conflist, installed in "
                       "share/vmlet/cni), or set cni.conf_dir in ",
                       config_path));
  }
  // Each plugin of the list and the IPAM plugin it delegates to.
  std::string plugins;
  std::vector<std::string> missing;
  for (const network::CniPlugin& plugin : cni->plugins) {
    std::vector<std::string> types = {plugin.type};
    if (std::string ipam = IpamType(plugin.json); !ipam.empty()) types.push_back(ipam);
    for (size_t i = 0; i < types.size(); ++i) {
      if (i == 0) {
        StrAppend(&plugins, plugins.empty() ? "" : ", ", types[i]);
      } else {
        StrAppend(&plugins, " (", types[i], ")");
      }
      bool found = false;
      for (const std::string& dir : config.cni_bin_dirs) {
        if (IsExecutableFile(StrCat(dir, "/", types[i]))) {
          found = true;
          break;
        }
      }
      if (!found) missing.push_back(types[i]);
    }
  }
  const std::string what = StrCat(cni->path, ": network \"", cni->name, "\", plugins ", plugins);
  if (!missing.empty()) {
    std::string names;
    for (const std::string& name : missing) StrAppend(&names, names.empty() ? "" : ", ", name);
    return Fail("cni",
                StrCat(what, "; not an executable in ", JoinDirs(config.cni_bin_dirs), ": ", names,
                       ": every pod sandbox fails to get its network"),
                StrCat("apt-get install containernetworking-plugins (installs into /usr/lib/cni), "
                       "or add the plugins' directory to cni.bin_dirs in ",
                       config_path));
  }
  return Ok("cni", what);
}

}  // namespace vmlet::ctl::doctor

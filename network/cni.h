// The Container Network Interface, as containerd and CRI-O drive it (CNI
// spec 1.0, with the older versions its plugins may still speak): the
// node's network configuration from the CNI configuration directory, and
// the plugins of its list run for ADD, DEL and CHECK of a pod sandbox's
// network namespace. The plugin results are in network/cni_result.h.
#ifndef VMLET_NETWORK_CNI_H_
#define VMLET_NETWORK_CNI_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "network/cni_result.h"

namespace vmlet::network {

struct CniPlugin {
  std::string type;
  std::string json;  // The plugin's own object.
};

struct CniConfig {
  std::string path;  // The file it came from.
  std::string name;
  std::string cni_version;
  bool disable_check = false;
  std::vector<CniPlugin> plugins;
  std::string json;  // The whole list, normalised (a single .conf wrapped into a list).
};

// Parses a .conflist (or, with `single_plugin`, a .conf/.json single-plugin
// file). INVALID_ARGUMENT naming `source`, the field and what was expected.
// Supported cniVersion: 0.1.0..1.1.0 (with "cniVersions", the highest of
// those listed that vmlet speaks). Thread-safe.
absl::StatusOr<CniConfig> ParseCniConfig(std::string_view json, std::string_view source,
                                         bool single_plugin);

// The first valid file (*.conflist, *.conf, *.json) in lexical order of
// `conf_dir`, as the kubelet's other runtimes choose. FAILED_PRECONDITION
// when there is none, with a message that lists each file skipped and why
// ("no valid CNI network configuration in /etc/cni/net.d: 10-x.conf: ...").
// Thread-safe.
absl::StatusOr<CniConfig> LoadCniConfig(const std::string& conf_dir);

struct CniPortMapping {
  int host_port = 0;
  int container_port = 0;
  std::string protocol = "tcp";
  std::string host_ip;
};

struct CniBandwidth {  // bits/s, bits
  int64_t ingress_rate = 0, ingress_burst = 0, egress_rate = 0, egress_burst = 0;
};

struct CniRuntime {
  std::string container_id;  // The sandbox id -> CNI_CONTAINERID.
  std::string netns_path;    // CNI_NETNS
  std::string ifname = "eth0";
  // CNI_ARGS K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID;
  // K8S_POD_INFRA_CONTAINER_ID = container_id; IgnoreUnknown=1.
  std::string pod_namespace, pod_name, pod_uid;
  std::vector<CniPortMapping> port_mappings;  // runtimeConfig "portMappings" (hostPort>0 only).
  std::optional<CniDns> dns;                  // runtimeConfig "dns".
  std::optional<CniBandwidth> bandwidth;      // runtimeConfig "bandwidth".
};

// Runs the plugins of a network configuration list. Plugins run as children
// of the calling thread, so a caller inside RunInNetns (network/netns.h)
// runs them in that namespace. Their environment is vmletd's own plus
// CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH.
//
// Errors: a missing plugin is FAILED_PRECONDITION; a plugin that fails is
// INTERNAL (UNAVAILABLE for the spec's code 11, "try again later") with its
// error message; one that runs past the timeout DEADLINE_EXCEEDED; bad pod
// names (';' or '=' in a CNI_ARGS value) INVALID_ARGUMENT.
//
// Thread-safe: one runner may serve concurrent calls (for different
// sandboxes; calls for one sandbox must be serialised by the caller).
class CniRunner {
 public:
  // `bin_dirs` are searched in order for each plugin type; `timeout` bounds
  // each plugin run.
  explicit CniRunner(std::vector<std::string> bin_dirs, absl::Duration timeout = absl::Minutes(1));

  // Runs ADD through the list; each plugin gets name, cniVersion, prevResult
  // (from the previous plugin) and runtimeConfig holding only the
  // capabilities its "capabilities" map enables (portMappings, dns,
  // bandwidth). Returns the last plugin's result. Does not undo anything on
  // failure: the caller runs Del.
  absl::StatusOr<CniResult> Add(const CniConfig& config, const CniRuntime& runtime) const;

  // DEL in reverse order with prevResult = `previous` (when given and
  // cniVersion >= 0.4.0). Idempotent as the spec asks of plugins; keeps going
  // through all plugins after an error and returns the first.
  absl::Status Del(const CniConfig& config, const CniRuntime& runtime,
                   const CniResult* previous) const;

  // CHECK (cniVersion >= 0.4.0 and not disableCheck; OK otherwise).
  absl::Status Check(const CniConfig& config, const CniRuntime& runtime,
                     const CniResult& previous) const;

 private:
  // Runs one plugin with `command`; returns its stdout.
  absl::StatusOr<std::string> RunPlugin(std::string_view command, const CniConfig& config,
                                        size_t plugin, const CniRuntime& runtime,
                                        const std::string* prev_result) const;

  std::vector<std::string> bin_dirs_;
  absl::Duration timeout_;
};

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_CNI_H_

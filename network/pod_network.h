// A pod sandbox's network, from namespace to VM: the one object cri/ talks
// to. Setup makes the sandbox's network namespace, runs the CNI ADD of the
// node's network configuration in it, puts a tap for the VM next to the CNI
// interface (tap.h) and serves the pod's address to the VM by DHCP
// (dhcp.h). Teardown undoes all of it, in reverse, and can be called any
// number of times, also for a setup that was interrupted anywhere.
//
// What must survive a restart of vmletd is PodNetworkState, which the
// caller persists: Setup hands it over through `checkpoint` before each
// step that makes something Teardown has to undo.
//
// Modes: "cni" (the default; a pod gets the cluster network) and "none"
// (the namespace has only loopback and the VM no NIC; for nodes and tests
// without a pod network).
#ifndef VMLET_NETWORK_POD_NETWORK_H_
#define VMLET_NETWORK_POD_NETWORK_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "network/cloud_init.h"
#include "network/cni.h"
#include "network/dhcp.h"

namespace vmlet::network {

struct PodNetworkOptions {
  std::string mode = "cni";  // "cni" or "none".
  std::string netns_dir;     // <run_dir>/netns: one pinned namespace per sandbox.
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::vector<std::string> cni_bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  absl::Duration cni_timeout = absl::Minutes(1);
};

// What the runtime knows of the pod (from its sandbox config).
struct PodNetworkConfig {
  std::string sandbox_id;
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;
  std::string hostname;
  std::vector<CniPortMapping> port_mappings;
  CniDns dns;  // The kubelet's dns_config.
  std::optional<CniBandwidth> bandwidth;
};

// What a sandbox's network is made of; persisted by the caller.
struct PodNetworkState {
  std::string netns_path;
  std::string cni_config;        // The network configuration list ADD ran with (JSON); DEL uses it.
  std::string cni_result;        // ADD's result (JSON): prevResult of DEL.
  std::vector<std::string> ips;  // The pod's addresses, primary first, without prefix.
  std::string mac;               // The VM NIC's MAC.
  std::string tap;               // The VM's tap in the namespace; empty without a NIC.
};

// Thread-safe; calls for different sandboxes run concurrently, calls for
// one sandbox must be serialised by the caller. Virtual for the fakes of
// cri/'s unit tests.
class PodNetwork {
 public:
  explicit PodNetwork(PodNetworkOptions options);
  virtual ~PodNetwork() = default;

  const PodNetworkOptions& options() const { return options_; }

  // OK when pods can get a network; otherwise FAILED_PRECONDITION saying
  // why (no valid CNI configuration). Reads the configuration directory.
  virtual absl::Status Ready() const;

  // Sets the network of a sandbox up. On failure everything made is
  // undone (the error of an undo is logged) and `state` is what is left to
  // tear down (normally nothing).
  virtual absl::Status Setup(const PodNetworkConfig& config, PodNetworkState* state,
                             const std::function<absl::Status(const PodNetworkState&)>& checkpoint);

  // Tears down whatever `state` says was made; OK when nothing is left.
  // `state` is cleared except for `ips`, which the sandbox keeps reporting.
  virtual absl::Status Teardown(const PodNetworkConfig& config, PodNetworkState* state);

  // After a restart of vmletd: serves DHCP again for a set-up sandbox.
  // FAILED_PRECONDITION when the namespace is gone (the node rebooted).
  virtual absl::Status Restore(const PodNetworkConfig& config, const PodNetworkState& state);

  // The cloud-init seed describing this network and hostname to the guest.
  static CloudInitSeed Seed(const PodNetworkConfig& config, const PodNetworkState& state);

  // The DHCP lease the VM gets (INVALID_ARGUMENT without an IPv4 address).
  static absl::StatusOr<DhcpLease> Lease(const PodNetworkConfig& config,
                                         const PodNetworkState& state);

 private:
  CniRuntime Runtime(const PodNetworkConfig& config, const PodNetworkState& state) const;

  const PodNetworkOptions options_;
  CniRunner cni_;
  DhcpServer dhcp_;
};

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_POD_NETWORK_H_

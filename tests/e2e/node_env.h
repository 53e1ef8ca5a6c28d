// A test "node" for end-to-end tests with real VMs and the real pod network:
// a network namespace the test owns, holding a bridge and the real CNI
// plugins (bridge + host-local IPAM with a test-owned data directory +
// portmap, configured in a test-owned conf dir), and a vmletd with the
// libvirt driver (`accelerator: tcg`, `pod_network: cni`, the test guest as
// a local image) that runs inside that namespace through nsenter:
//
//   node namespace <dir>/node.netns (vmletd runs here)
//     bridge vmlet-e2e0 10.250.9.1/24 (made by the bridge plugin as gateway)
//       '-- veth -> pod namespace <dir>/run/netns/<sandbox> eth0 -- tap0 -- VM
//
// QEMU runs under libvirtd in the host's namespace and gets the tap as an
// open descriptor. Everything lives under one directory (vmletd's, see
// vmletd_process.h): config, state_dir, run_dir, CNI conf and IPAM data,
// the guest's image layout, pod log directories.
//
// The destructor removes everything, whatever the test's outcome: the pods
// (through vmletd while it runs), then any domain of the node's pod
// namespace or of this vmletd's VM directory, the pods' and the node's
// namespaces (which take the bridge, veths, taps and iptables rules with
// them) and the directory.
//
// Needs root, libvirtd, QEMU and the plugins in /usr/lib/cni; call
// PrepareTestGuest (test_guest.h) in main() before making one.
// Threading: one object is used from the test's main thread only.
#ifndef VMLET_TESTS_E2E_NODE_ENV_H_
#define VMLET_TESTS_E2E_NODE_ENV_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cri/v1/api.grpc.pb.h"
#include "tests/e2e/leak_check.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {

inline constexpr char kNsenter[] = "/usr/bin/nsenter";
inline constexpr char kCniPluginDir[] = "/usr/lib/cni";
// What a NodeEnv needs beside libvirtd and QEMU, for PrepareTestGuest.
std::vector<std::string> NodeEnvTools();

struct NodeEnvOptions {
  // The local image of the test guest that every NodeEnv offers, and the
  // kernel command line it boots with (tests/guest/build-guest.sh).
  std::string image = "vmlet.test/guest:node";
  std::string guest_cmdline = "console=ttyS0 quiet panic=-1";
  // Prefix of the pod namespace (a random suffix is added).
  std::string namespace_prefix = "node";
  // More lines of vmletd's config (e.g. "registries: ...\n").
  std::string extra_yaml;
};

class NodeEnv {
 public:
  // Makes the directory, the node namespace with its bridge, the CNI
  // configuration and the guest's image layout, and writes vmletd's config;
  // does not start vmletd. Check init_status().
  explicit NodeEnv(NodeEnvOptions options = {});
  ~NodeEnv();

  NodeEnv(const NodeEnv&) = delete;
  NodeEnv& operator=(const NodeEnv&) = delete;

  // Why the constructor could not prepare the node, or OK.
  const absl::Status& init_status() const { return init_status_; }

  // vmletd, set up to run in the node namespace; Start() it.
  VmletdProcess& vmletd() { return *vmletd_; }
  runtime::v1::RuntimeService::Stub& runtime() { return vmletd_->runtime(); }
  runtime::v1::ImageService::Stub& image() { return vmletd_->image(); }

  const std::string& dir() const { return dir_; }
  // The pinned node namespace, where vmletd and the bridge are.
  const std::string& node_netns() const { return node_netns_; }
  const std::string& pod_namespace() const { return pod_namespace_; }
  const std::string& image_name() const { return options_.image; }
  std::string state_dir() const { return dir_ + "/state"; }
  std::string run_dir() const { return dir_ + "/run"; }
  std::string conf_dir() const { return dir_ + "/net.d"; }
  std::string ipam_dir() const { return dir_ + "/ipam"; }
  static constexpr char kBridge[] = "vmlet-e2e0";
  static constexpr char kGateway[] = "10.250.9.1";
  static constexpr char kSubnetPrefix[] = "10.250.9.";  // Pod IPs start so.
  static constexpr char kNetworkName[] = "vmlet-e2e";

  // A sandbox config of the node's pod namespace: name, a fresh uid,
  // `attempt`, hostname, a log directory under dir().
  runtime::v1::PodSandboxConfig PodConfig(const std::string& name, uint32_t attempt = 0) const;
  // The directory of a pod's logs (PodConfig's log_directory).
  std::string LogDirectory(const std::string& pod_name) const;

  // Runs `argv` inside the node namespace: its output, or a message that
  // starts with "FAILED" when it did not exit 0.
  std::string InNode(std::vector<std::string> argv,
                     absl::Duration timeout = absl::Seconds(20)) const;

  // What a leak check of this node looks at (leak_check.h).
  LeakScope Scope() const;

  // Removes every sandbox vmletd lists (while it runs); the messages of
  // the calls that failed, or OK. The destructor calls it too.
  absl::Status RemoveAllPods();

 private:
  absl::Status Prepare();
  std::string NetworkConfig() const;

  const NodeEnvOptions options_;
  absl::Status init_status_;
  std::unique_ptr<VmletdProcess> vmletd_;
  std::string dir_;
  std::string node_netns_;
  std::string pod_namespace_;
};

}  // namespace vmlet::e2e

#endif  // VMLET_TESTS_E2E_NODE_ENV_H_

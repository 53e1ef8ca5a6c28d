// vmletd's configuration: /etc/vmlet/vmlet.yaml or the file named by
// --config. Every key has a default (docs/configuration.md, whose table a
// test compares with ConfigKeyValues); an unknown key or a bad value is an
// error that names the key. Every function here may be called from any
// thread.
#ifndef VMLET_CMD_VMLETD_CONFIG_H_
#define VMLET_CMD_VMLETD_CONFIG_H_

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/logging.h"
#include "image/http_source.h"
#include "image/registry_client.h"

namespace vmlet {

inline constexpr std::string_view kDefaultConfigPath = "/etc/vmlet/vmlet.yaml";

enum class Accelerator { kAuto, kKvm, kTcg };
std::string_view AcceleratorName(Accelerator accelerator);

struct Config {
  std::string cri_socket = "/run/vmlet/cri.sock";
  std::string vmspec_socket = "/run/vmlet/vmspec.sock";
  // The group of the VM-spec socket (mode 0660) whose members, with root,
  // may change things through it (apply and delete specs, pull and import
  // images, attach to consoles); other callers may only read. Empty:
  // root's group. A group the system does not know stops vmletd at start.
  std::string vmspec_group;
  // VM specs from files: the *.yaml and *.yml files of this directory,
  // applied at start and whenever they change. Empty: none. A missing
  // directory is fine (it is read once it appears).
  std::string vmspec_dir = "/etc/vmlet/vmspecs.d";
  std::string state_dir = "/var/lib/vmlet";
  std::string run_dir = "/run/vmlet";
  std::string libvirt_uri = "qemu:///system";
  Accelerator accelerator = Accelerator::kAuto;
  LogLevel log_level = LogLevel::kInfo;
  // How long in-flight RPCs may run on after SIGTERM/SIGINT.
  int shutdown_timeout_seconds = 10;
  // vCPUs and memory of a VM whose container has no CPU / memory limit.
  int default_vcpus = 1;
  int default_memory_mib = 512;
  // What UpdateContainerResources may raise a running VM to: vCPUs (hot
  // plug; 0: the node's CPU count) and memory (the balloon; 0: each VM's
  // start size, so memory can shrink and grow back but not beyond).
  int max_vcpus = 0;
  int max_memory_mib = 0;
  // How often VM statistics are read from libvirt, in one bulk query.
  int stats_interval_seconds = 5;
  // What RuntimeConfig tells the kubelet: "systemd", "cgroupfs" or "auto"
  // (systemd when it runs the host). A choice the host cannot back is an
  // error at start.
  std::string cgroup_driver = "auto";
  // HOST:PORT of the Prometheus endpoint (/metrics) of vmletd itself; empty
  // or "none": off.
  std::string metrics_address;
  // Image name -> directory holding a VM image layout (disk/<file> or
  // boot/vmlinuz, boot/initrd, boot/cmdline), served without a registry.
  std::map<std::string, std::string> local_images;
  // Settings by registry host ("registry.example:5000"): plain HTTP, TLS,
  // mirrors.
  std::map<std::string, image::RegistrySettings> registries;
  // Image names served from HTTP(S) URLs, first matching rule wins.
  std::vector<image::TranslationRule> image_translations;
  // "cni" (the default): pods get the node's CNI network. "none": each pod
  // gets a network namespace with loopback only and its VM no NIC.
  std::string pod_network = "cni";
  // The CNI network configuration (the first valid file in lexical order)
  // and where the plugins are.
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::vector<std::string> cni_bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  int cni_plugin_timeout_seconds = 60;
  // The streaming server of exec, attach and port-forward: the kubelet
  // (or crictl) connects to the URLs the CRI returns. Port 0: a free port.
  // TLS when both files are set.
  std::string streaming_address = "127.0.0.1";
  int streaming_port = 0;
  std::string streaming_tls_cert_file;
  std::string streaming_tls_key_file;
  // "libvirt" (the default) or "fake", an in-process driver that only the
  // test suite selects.
  std::string vm_driver = "libvirt";
};

// Parses YAML text; `source` names it in messages.
absl::StatusOr<Config> ParseConfig(std::string_view yaml, std::string_view source);

// Loads `path`. When `must_exist` is false and the file does not exist,
// the defaults are returned.
absl::StatusOr<Config> LoadConfig(const std::string& path, bool must_exist);

// Every key ParseConfig accepts, dotted for nested ones ("cni.conf_dir"), in
// the order the reference lists them.
std::vector<std::string> KnownConfigKeys();

// Every configuration key, dotted for nested ones ("cni.conf_dir"), in the order the reference
// lists them, with its value in `config` rendered as the reference writes defaults: strings and
// numbers plain ("/run/vmlet/cri.sock", "10"), enums by name ("auto", "info"), lists in YAML flow
// style
// ("[/opt/cni/bin, /usr/lib/cni]"), empty maps and lists "none".
std::vector<std::pair<std::string, std::string>> ConfigKeyValues(const Config& config);

// `config` as a YAML document with every key, defaults included, that
// ParseConfig reads back to the same values (vmletd --print-config).
std::string RenderConfigYaml(const Config& config);

}  // namespace vmlet

#endif  // VMLET_CMD_VMLETD_CONFIG_H_

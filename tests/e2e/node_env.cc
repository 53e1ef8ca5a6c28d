#include "tests/e2e/node_env.h"

#include <sys/stat.h>

#include <cerrno>

#include "base/file_util.h"
#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/netns.h"
#include "tests/e2e/test_guest.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;

// The config names the directory before it exists: replaced afterwards.
constexpr char kDirPlaceholder[] = "@NODE_DIR@";

void ReplaceAll(std::string* text, std::string_view from, const std::string& to) {
  for (size_t at = text->find(from); at != std::string::npos; at = text->find(from, at)) {
    text->replace(at, from.size(), to);
    at += to.size();
  }
}

}  // namespace

std::vector<std::string> NodeEnvTools() {
  return {kNsenter,
          StrCat(kCniPluginDir, "/bridge"),
          StrCat(kCniPluginDir, "/host-local"),
          StrCat(kCniPluginDir, "/portmap"),
          "/usr/sbin/tc",
          "/usr/sbin/iptables-save"};
}

NodeEnv::NodeEnv(NodeEnvOptions options) : options_(std::move(options)) {
  pod_namespace_ = StrCat(options_.namespace_prefix, "-", GenerateId().substr(0, 8));
  vmletd_ = std::make_unique<VmletdProcess>(
      StrCat("vm_driver: libvirt\n", "libvirt_uri: ", kLibvirtUri, "\n", "accelerator: tcg\n",
             "pod_network: cni\n", "local_images:\n  \"", options_.image, "\": ", kDirPlaceholder,
             "/guest\n", "cni:\n  conf_dir: ", kDirPlaceholder, "/net.d\n  bin_dirs: [",
             kCniPluginDir, "]\n", options_.extra_yaml),
      /*fake_driver=*/false);
  init_status_ = vmletd_->init_status();
  if (!init_status_.ok()) return;
  dir_ = vmletd_->dir();
  init_status_ = Prepare();
}

absl::Status NodeEnv::Prepare() {
  // QEMU (an unprivileged user) reaches the VMs' files through it.
  if (::chmod(dir_.c_str(), 0711) != 0) return ErrnoToStatus(errno, StrCat("chmod ", dir_));
  VMLET_ASSIGN_OR_RETURN(std::string config, ReadFile(vmletd_->config_path()));
  ReplaceAll(&config, kDirPlaceholder, dir_);
  VMLET_RETURN_IF_ERROR(WriteFileAtomically(vmletd_->config_path(), config, 0600));
  VMLET_RETURN_IF_ERROR(MakeGuestLayout(dir_ + "/guest", options_.guest_cmdline));
  VMLET_RETURN_IF_ERROR(MakeDirs(conf_dir(), 0755));
  VMLET_RETURN_IF_ERROR(MakeDirs(ipam_dir(), 0755));
  VMLET_RETURN_IF_ERROR(
      WriteFileAtomically(conf_dir() + "/10-vmlet-e2e.conflist", NetworkConfig(), 0644));
  node_netns_ = dir_ + "/node.netns";
  VMLET_RETURN_IF_ERROR(Annotate(network::CreateNetns(node_netns_), "creating the node namespace"));
  for (const std::vector<std::string>& step : std::vector<std::vector<std::string>>{
           {"ip", "link", "add", kBridge, "type", "bridge"},
           {"ip", "link", "set", kBridge, "up"},
           {"sysctl", "-qw", "net.ipv4.ip_forward=1"},
       }) {
    std::string output = InNode(step);
    if (output.starts_with("FAILED")) {
      return absl::InternalError(StrCat("preparing the node namespace: ", output));
    }
  }
  vmletd_->set_netns(node_netns_);
  return absl::OkStatus();
}

NodeEnv::~NodeEnv() {
  if (vmletd_ == nullptr) return;
  if (vmletd_->running()) (void)RemoveAllPods();
  if (vmletd_->running()) (void)vmletd_->Kill();
  if (!dir_.empty()) {
    // Whatever domain is still there (a failed test, a leak).
    for (const std::string& name :
         TakeLeakSnapshot({.vm_instance = state_dir() + "/vms", .pod_namespace = pod_namespace_})
             .domains) {
      Virsh({"destroy", name});
      Virsh({"undefine", "--nvram", name});
    }
  }
  // The node's namespace takes the bridge, the veths and the iptables rules
  // with it; vmletd_'s destructor unpins the pods' namespaces and removes
  // the directory.
  if (!node_netns_.empty()) (void)network::RemoveNetns(node_netns_);
  vmletd_.reset();
}

std::string NodeEnv::NetworkConfig() const {
  return StrCat(R"({"cniVersion": "1.0.0", "name": ")", kNetworkName, R"(", "plugins": [
  {"type": "bridge", "bridge": ")",
                kBridge, R"(", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "dataDir": ")",
                ipam_dir(), R"(",
            "ranges": [[{"subnet": "10.250.9.0/24", "rangeStart": "10.250.9.10",
                         "rangeEnd": "10.250.9.200", "gateway": ")",
                kGateway, R"("}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}
]})");
}

std::string NodeEnv::LogDirectory(const std::string& pod_name) const {
  return StrCat(dir_, "/logs/", pod_name);
}

v1::PodSandboxConfig NodeEnv::PodConfig(const std::string& name, uint32_t attempt) const {
  v1::PodSandboxConfig config;
  config.mutable_metadata()->set_name(name);
  config.mutable_metadata()->set_namespace_(pod_namespace_);
  config.mutable_metadata()->set_uid(GenerateId().substr(0, 16));
  config.mutable_metadata()->set_attempt(attempt);
  config.set_hostname(name);
  config.set_log_directory(LogDirectory(name));
  (*config.mutable_labels())["io.kubernetes.pod.name"] = name;
  (*config.mutable_labels())["io.kubernetes.pod.namespace"] = pod_namespace_;
  return config;
}

std::string NodeEnv::InNode(std::vector<std::string> argv, absl::Duration timeout) const {
  argv.insert(argv.begin(), {kNsenter, "--net=" + node_netns_, "--"});
  absl::StatusOr<ExitStatus> result = RunCommand(argv, timeout);
  if (!result.ok()) return StrCat("FAILED: ", result.status().message());
  if (result->code != 0) return StrCat("FAILED (exit ", result->code, "): ", result->output);
  return result->output;
}

LeakScope NodeEnv::Scope() const {
  return LeakScope{.dir = dir_,
                   .state_dir = state_dir(),
                   .run_dir = run_dir(),
                   .vm_instance = state_dir() + "/vms",
                   .pod_namespace = pod_namespace_,
                   .node_netns = node_netns_,
                   .ipam_dir = ipam_dir()};
}

absl::Status NodeEnv::RemoveAllPods() {
  if (!vmletd_->running()) return absl::OkStatus();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ListPodSandboxResponse listed;
  grpc::Status status = runtime().ListPodSandbox(&context, v1::ListPodSandboxRequest(), &listed);
  if (!status.ok())
    return absl::UnavailableError(StrCat("ListPodSandbox: ", status.error_message()));
  std::vector<std::string> ids;
  for (const v1::PodSandbox& sandbox : listed.items()) ids.push_back(sandbox.id());
  return vmletd_->RemovePodSandboxes(ids);
}

}  // namespace vmlet::e2e

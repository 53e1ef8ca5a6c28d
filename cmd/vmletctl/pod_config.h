// The CRI configs vmletctl sends, shaped like the kubelet's: the labels it
// sets (io.kubernetes.pod.name, .namespace, .uid, io.kubernetes.container.name)
// and its log layout (/var/log/pods/<ns>_<name>_<uid>/<container>/<attempt>.log),
// so that vmletd treats a pod run by hand like any other.
#ifndef VMLET_CMD_VMLETCTL_POD_CONFIG_H_
#define VMLET_CMD_VMLETCTL_POD_CONFIG_H_

#include <cstdint>
#include <string>

#include "cri/v1/api.pb.h"

namespace vmlet::ctl {

inline constexpr char kPodNameLabel[] = "io.kubernetes.pod.name";
inline constexpr char kPodNamespaceLabel[] = "io.kubernetes.pod.namespace";
inline constexpr char kPodUidLabel[] = "io.kubernetes.pod.uid";
inline constexpr char kContainerNameLabel[] = "io.kubernetes.container.name";

struct PodParams {
  std::string name;
  std::string namespace_ = "default";
  std::string uid;  // NewUid() when empty.
  uint32_t attempt = 0;
  std::string log_dir;  // DefaultLogDir() when empty; made absolute.
  std::string vmspec;   // The VM spec the pod binds to (vmlet.io/vmspec); none when empty.
};

struct VmParams {
  std::string name = "vm";
  std::string image;
  int64_t cpus = 0;        // vCPUs; 0 leaves the choice to vmletd.
  int64_t memory_mib = 0;  // 0 leaves the choice to vmletd.
  std::string log_path;  // Relative to the pod's log directory; "<name>/<attempt>.log" when empty.
  uint32_t attempt = 0;
};

// A random RFC 4122 version 4 UUID, as Kubernetes gives pods.
std::string NewUid();

// "/var/log/pods/<namespace>_<name>_<uid>", where the kubelet keeps a pod's logs.
std::string DefaultLogDir(const std::string& namespace_, const std::string& name,
                          const std::string& uid);

// The sandbox config of pod `params`, with uid and log directory filled in.
runtime::v1::PodSandboxConfig MakePodConfig(PodParams params);

// The config of VM container `params` in the pod described by `pod`.
runtime::v1::ContainerConfig MakeContainerConfig(const runtime::v1::PodSandboxMetadata& pod,
                                                 const VmParams& params);

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_POD_CONFIG_H_

#include "cmd/vmletctl/pod_config.h"

#include <filesystem>
#include <system_error>

#include "base/id.h"
#include "base/str_util.h"

namespace vmlet::ctl {
namespace {

namespace v1 = ::runtime::v1;

constexpr int64_t kCpuPeriod = 100000;  // The kubelet's CFS period, in microseconds.
constexpr int64_t kMiB = int64_t{1} << 20;

}  // namespace

std::string NewUid() {
  std::string hex = GenerateId();  // 64 random hex characters.
  hex[12] = '4';                   // Version 4: random.
  const int nibble = hex[16] <= '9' ? hex[16] - '0' : hex[16] - 'a' + 10;
  hex[16] = "89ab"[nibble & 3];  // The RFC 4122 variant.
  return StrCat(std::string_view(hex).substr(0, 8), "-", std::string_view(hex).substr(8, 4), "-",
                std::string_view(hex).substr(12, 4), "-", std::string_view(hex).substr(16, 4), "-",
                std::string_view(hex).substr(20, 12));
}

std::string DefaultLogDir(const std::string& namespace_, const std::string& name,
                          const std::string& uid) {
  return StrCat("/var/log/pods/", namespace_, "_", name, "_", uid);
}

v1::PodSandboxConfig MakePodConfig(PodParams params) {
  if (params.uid.empty()) params.uid = NewUid();
  if (params.log_dir.empty()) {
    params.log_dir = DefaultLogDir(params.namespace_, params.name, params.uid);
  } else if (params.log_dir[0] != '/') {
    // vmletd wants an absolute path; a person means one under the current directory.
    std::error_code error;
    std::filesystem::path absolute = std::filesystem::absolute(params.log_dir, error);
    if (!error) params.log_dir = absolute.lexically_normal().string();
  }
  while (params.log_dir.size() > 1 && params.log_dir.back() == '/') params.log_dir.pop_back();
  v1::PodSandboxConfig config;
  v1::PodSandboxMetadata* metadata = config.mutable_metadata();
  metadata->set_name(params.name);
  metadata->set_namespace_(params.namespace_);
  metadata->set_uid(params.uid);
  metadata->set_attempt(params.attempt);
  config.set_hostname(params.name);
  config.set_log_directory(params.log_dir);
  auto& labels = *config.mutable_labels();
  labels[kPodNameLabel] = params.name;
  labels[kPodNamespaceLabel] = params.namespace_;
  labels[kPodUidLabel] = params.uid;
  (*config.mutable_annotations())["kubernetes.io/config.source"] = "vmletctl";
  if (!params.vmspec.empty()) (*config.mutable_annotations())["vmlet.io/vmspec"] = params.vmspec;
  return config;
}

v1::ContainerConfig MakeContainerConfig(const v1::PodSandboxMetadata& pod, const VmParams& params) {
  v1::ContainerConfig config;
  config.mutable_metadata()->set_name(params.name);
  config.mutable_metadata()->set_attempt(params.attempt);
  config.mutable_image()->set_image(params.image);
  config.set_log_path(params.log_path.empty() ? StrCat(params.name, "/", params.attempt, ".log")
                                              : params.log_path);
  auto& labels = *config.mutable_labels();
  labels[kContainerNameLabel] = params.name;
  labels[kPodNameLabel] = pod.name();
  labels[kPodNamespaceLabel] = pod.namespace_();
  labels[kPodUidLabel] = pod.uid();
  (*config.mutable_annotations())["io.kubernetes.container.restartCount"] = StrCat(params.attempt);
  v1::LinuxContainerResources* resources = config.mutable_linux()->mutable_resources();
  if (params.cpus > 0) {
    resources->set_cpu_period(kCpuPeriod);
    resources->set_cpu_quota(params.cpus * kCpuPeriod);
    resources->set_cpu_shares(params.cpus * 1024);
  }
  if (params.memory_mib > 0) resources->set_memory_limit_in_bytes(params.memory_mib * kMiB);
  return config;
}

}  // namespace vmlet::ctl

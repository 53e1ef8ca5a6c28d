// Checks that vmlet's api/cri/v1/api.proto is wire compatible with Kubernetes' CRI runtime.v1.
//
// The expectations below are transcribed from upstream k8s.io/cri-api
// (pkg/apis/runtime/v1/api.proto). A mismatch here means the kubelet and vmlet would disagree
// on the bytes, so fix the .proto, not the table, unless upstream changed.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <map>
#include <string>

#include "cri/v1/api.pb.h"

namespace vmlet::cri {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;

constexpr char kPackage[] = "runtime.v1.";

std::string FullName(const char* name) { return std::string(kPackage) + name; }

enum class Cardinality { kSingular, kRepeated, kMap };
constexpr Cardinality kSingular = Cardinality::kSingular;
constexpr Cardinality kRepeated = Cardinality::kRepeated;
constexpr Cardinality kMap = Cardinality::kMap;

constexpr FieldDescriptor::Type kBool = FieldDescriptor::TYPE_BOOL;
constexpr FieldDescriptor::Type kBytes = FieldDescriptor::TYPE_BYTES;
constexpr FieldDescriptor::Type kDouble = FieldDescriptor::TYPE_DOUBLE;
constexpr FieldDescriptor::Type kEnum = FieldDescriptor::TYPE_ENUM;
constexpr FieldDescriptor::Type kInt32 = FieldDescriptor::TYPE_INT32;
constexpr FieldDescriptor::Type kInt64 = FieldDescriptor::TYPE_INT64;
constexpr FieldDescriptor::Type kMessage = FieldDescriptor::TYPE_MESSAGE;
constexpr FieldDescriptor::Type kString = FieldDescriptor::TYPE_STRING;
constexpr FieldDescriptor::Type kUint32 = FieldDescriptor::TYPE_UINT32;
constexpr FieldDescriptor::Type kUint64 = FieldDescriptor::TYPE_UINT64;

// One upstream field. Names are relative to package runtime.v1. For kMap rows `type` is the
// value type (every CRI map is keyed by string) and `type_name` is empty.
struct FieldRow {
  const char* message;
  const char* field;
  int number;
  FieldDescriptor::Type type;
  Cardinality cardinality;
  const char* type_name;  // Referenced message or enum; "" for scalars.
};

// Every field of every message listed here; FieldSetOfCoveredMessagesIsExactlyUpstreams relies
// on each message's rows being complete.
constexpr FieldRow kFieldRows[] = {
    // PodSandboxConfig
    {"PodSandboxConfig", "metadata", 1, kMessage, kSingular, "PodSandboxMetadata"},
    {"PodSandboxConfig", "hostname", 2, kString, kSingular, ""},
    {"PodSandboxConfig", "log_directory", 3, kString, kSingular, ""},
    {"PodSandboxConfig", "dns_config", 4, kMessage, kSingular, "DNSConfig"},
    {"PodSandboxConfig", "port_mappings", 5, kMessage, kRepeated, "PortMapping"},
    {"PodSandboxConfig", "labels", 6, kString, kMap, ""},
    {"PodSandboxConfig", "annotations", 7, kString, kMap, ""},
    {"PodSandboxConfig", "linux", 8, kMessage, kSingular, "LinuxPodSandboxConfig"},
    {"PodSandboxConfig", "windows", 9, kMessage, kSingular, "WindowsPodSandboxConfig"},

    // PodSandboxMetadata
    {"PodSandboxMetadata", "name", 1, kString, kSingular, ""},
    {"PodSandboxMetadata", "uid", 2, kString, kSingular, ""},
    {"PodSandboxMetadata", "namespace", 3, kString, kSingular, ""},
    {"PodSandboxMetadata", "attempt", 4, kUint32, kSingular, ""},

    // DNSConfig
    {"DNSConfig", "servers", 1, kString, kRepeated, ""},
    {"DNSConfig", "searches", 2, kString, kRepeated, ""},
    {"DNSConfig", "options", 3, kString, kRepeated, ""},

    // PortMapping
    {"PortMapping", "protocol", 1, kEnum, kSingular, "Protocol"},
    {"PortMapping", "container_port", 2, kInt32, kSingular, ""},
    {"PortMapping", "host_port", 3, kInt32, kSingular, ""},
    {"PortMapping", "host_ip", 4, kString, kSingular, ""},

    // LinuxPodSandboxConfig
    {"LinuxPodSandboxConfig", "cgroup_parent", 1, kString, kSingular, ""},
    {"LinuxPodSandboxConfig", "security_context", 2, kMessage, kSingular,
     "LinuxSandboxSecurityContext"},
    {"LinuxPodSandboxConfig", "sysctls", 3, kString, kMap, ""},
    {"LinuxPodSandboxConfig", "overhead", 4, kMessage, kSingular, "LinuxContainerResources"},
    {"LinuxPodSandboxConfig", "resources", 5, kMessage, kSingular, "LinuxContainerResources"},

    // LinuxSandboxSecurityContext
    {"LinuxSandboxSecurityContext", "namespace_options", 1, kMessage, kSingular, "NamespaceOption"},
    {"LinuxSandboxSecurityContext", "selinux_options", 2, kMessage, kSingular, "SELinuxOption"},
    {"LinuxSandboxSecurityContext", "run_as_user", 3, kMessage, kSingular, "Int64Value"},
    {"LinuxSandboxSecurityContext", "readonly_rootfs", 4, kBool, kSingular, ""},
    {"LinuxSandboxSecurityContext", "supplemental_groups", 5, kInt64, kRepeated, ""},
    {"LinuxSandboxSecurityContext", "privileged", 6, kBool, kSingular, ""},
    {"LinuxSandboxSecurityContext", "seccomp_profile_path", 7, kString, kSingular, ""},
    {"LinuxSandboxSecurityContext", "run_as_group", 8, kMessage, kSingular, "Int64Value"},
    {"LinuxSandboxSecurityContext", "seccomp", 9, kMessage, kSingular, "SecurityProfile"},
    {"LinuxSandboxSecurityContext", "apparmor", 10, kMessage, kSingular, "SecurityProfile"},
    {"LinuxSandboxSecurityContext", "supplemental_groups_policy", 11, kEnum, kSingular,
     "SupplementalGroupsPolicy"},

    // NamespaceOption
    {"NamespaceOption", "network", 1, kEnum, kSingular, "NamespaceMode"},
    {"NamespaceOption", "pid", 2, kEnum, kSingular, "NamespaceMode"},
    {"NamespaceOption", "ipc", 3, kEnum, kSingular, "NamespaceMode"},
    {"NamespaceOption", "target_id", 4, kString, kSingular, ""},
    {"NamespaceOption", "userns_options", 5, kMessage, kSingular, "UserNamespace"},

    // UserNamespace
    {"UserNamespace", "mode", 1, kEnum, kSingular, "NamespaceMode"},
    {"UserNamespace", "uids", 2, kMessage, kRepeated, "IDMapping"},
    {"UserNamespace", "gids", 3, kMessage, kRepeated, "IDMapping"},

    // IDMapping
    {"IDMapping", "host_id", 1, kUint32, kSingular, ""},
    {"IDMapping", "container_id", 2, kUint32, kSingular, ""},
    {"IDMapping", "length", 3, kUint32, kSingular, ""},

    // Int64Value
    {"Int64Value", "value", 1, kInt64, kSingular, ""},

    // SecurityProfile
    {"SecurityProfile", "profile_type", 1, kEnum, kSingular, "SecurityProfile.ProfileType"},
    {"SecurityProfile", "localhost_ref", 2, kString, kSingular, ""},

    // SELinuxOption
    {"SELinuxOption", "user", 1, kString, kSingular, ""},
    {"SELinuxOption", "role", 2, kString, kSingular, ""},
    {"SELinuxOption", "type", 3, kString, kSingular, ""},
    {"SELinuxOption", "level", 4, kString, kSingular, ""},

    // ContainerConfig
    {"ContainerConfig", "metadata", 1, kMessage, kSingular, "ContainerMetadata"},
    {"ContainerConfig", "image", 2, kMessage, kSingular, "ImageSpec"},
    {"ContainerConfig", "command", 3, kString, kRepeated, ""},
    {"ContainerConfig", "args", 4, kString, kRepeated, ""},
    {"ContainerConfig", "working_dir", 5, kString, kSingular, ""},
    {"ContainerConfig", "envs", 6, kMessage, kRepeated, "KeyValue"},
    {"ContainerConfig", "mounts", 7, kMessage, kRepeated, "Mount"},
    {"ContainerConfig", "devices", 8, kMessage, kRepeated, "Device"},
    {"ContainerConfig", "labels", 9, kString, kMap, ""},
    {"ContainerConfig", "annotations", 10, kString, kMap, ""},
    {"ContainerConfig", "log_path", 11, kString, kSingular, ""},
    {"ContainerConfig", "stdin", 12, kBool, kSingular, ""},
    {"ContainerConfig", "stdin_once", 13, kBool, kSingular, ""},
    {"ContainerConfig", "tty", 14, kBool, kSingular, ""},
    {"ContainerConfig", "linux", 15, kMessage, kSingular, "LinuxContainerConfig"},
    {"ContainerConfig", "windows", 16, kMessage, kSingular, "WindowsContainerConfig"},
    {"ContainerConfig", "CDI_devices", 17, kMessage, kRepeated, "CDIDevice"},
    {"ContainerConfig", "stop_signal", 18, kEnum, kSingular, "Signal"},

    // ContainerMetadata
    {"ContainerMetadata", "name", 1, kString, kSingular, ""},
    {"ContainerMetadata", "attempt", 2, kUint32, kSingular, ""},

    // ImageSpec
    {"ImageSpec", "image", 1, kString, kSingular, ""},
    {"ImageSpec", "annotations", 2, kString, kMap, ""},
    {"ImageSpec", "user_specified_image", 18, kString, kSingular, ""},
    {"ImageSpec", "runtime_handler", 19, kString, kSingular, ""},
    {"ImageSpec", "image_ref", 20, kString, kSingular, ""},

    // KeyValue
    {"KeyValue", "key", 1, kString, kSingular, ""},
    {"KeyValue", "value", 2, kString, kSingular, ""},

    // Mount
    {"Mount", "container_path", 1, kString, kSingular, ""},
    {"Mount", "host_path", 2, kString, kSingular, ""},
    {"Mount", "readonly", 3, kBool, kSingular, ""},
    {"Mount", "selinux_relabel", 4, kBool, kSingular, ""},
    {"Mount", "propagation", 5, kEnum, kSingular, "MountPropagation"},
    {"Mount", "uidMappings", 6, kMessage, kRepeated, "IDMapping"},
    {"Mount", "gidMappings", 7, kMessage, kRepeated, "IDMapping"},
    {"Mount", "recursive_read_only", 8, kBool, kSingular, ""},
    {"Mount", "image", 9, kMessage, kSingular, "ImageSpec"},
    {"Mount", "image_sub_path", 10, kString, kSingular, ""},

    // Device
    {"Device", "container_path", 1, kString, kSingular, ""},
    {"Device", "host_path", 2, kString, kSingular, ""},
    {"Device", "permissions", 3, kString, kSingular, ""},

    // CDIDevice
    {"CDIDevice", "name", 1, kString, kSingular, ""},

    // LinuxContainerConfig
    {"LinuxContainerConfig", "resources", 1, kMessage, kSingular, "LinuxContainerResources"},
    {"LinuxContainerConfig", "security_context", 2, kMessage, kSingular,
     "LinuxContainerSecurityContext"},

    // LinuxContainerResources
    {"LinuxContainerResources", "cpu_period", 1, kInt64, kSingular, ""},
    {"LinuxContainerResources", "cpu_quota", 2, kInt64, kSingular, ""},
    {"LinuxContainerResources", "cpu_shares", 3, kInt64, kSingular, ""},
    {"LinuxContainerResources", "memory_limit_in_bytes", 4, kInt64, kSingular, ""},
    {"LinuxContainerResources", "oom_score_adj", 5, kInt64, kSingular, ""},
    {"LinuxContainerResources", "cpuset_cpus", 6, kString, kSingular, ""},
    {"LinuxContainerResources", "cpuset_mems", 7, kString, kSingular, ""},
    {"LinuxContainerResources", "hugepage_limits", 8, kMessage, kRepeated, "HugepageLimit"},
    {"LinuxContainerResources", "unified", 9, kString, kMap, ""},
    {"LinuxContainerResources", "memory_swap_limit_in_bytes", 10, kInt64, kSingular, ""},

    // HugepageLimit
    {"HugepageLimit", "page_size", 1, kString, kSingular, ""},
    {"HugepageLimit", "limit", 2, kUint64, kSingular, ""},

    // LinuxContainerSecurityContext
    {"LinuxContainerSecurityContext", "capabilities", 1, kMessage, kSingular, "Capability"},
    {"LinuxContainerSecurityContext", "privileged", 2, kBool, kSingular, ""},
    {"LinuxContainerSecurityContext", "namespace_options", 3, kMessage, kSingular,
     "NamespaceOption"},
    {"LinuxContainerSecurityContext", "selinux_options", 4, kMessage, kSingular, "SELinuxOption"},
    {"LinuxContainerSecurityContext", "run_as_user", 5, kMessage, kSingular, "Int64Value"},
    {"LinuxContainerSecurityContext", "run_as_username", 6, kString, kSingular, ""},
    {"LinuxContainerSecurityContext", "readonly_rootfs", 7, kBool, kSingular, ""},
    {"LinuxContainerSecurityContext", "supplemental_groups", 8, kInt64, kRepeated, ""},
    {"LinuxContainerSecurityContext", "apparmor_profile", 9, kString, kSingular, ""},
    {"LinuxContainerSecurityContext", "seccomp_profile_path", 10, kString, kSingular, ""},
    {"LinuxContainerSecurityContext", "no_new_privs", 11, kBool, kSingular, ""},
    {"LinuxContainerSecurityContext", "run_as_group", 12, kMessage, kSingular, "Int64Value"},
    {"LinuxContainerSecurityContext", "masked_paths", 13, kString, kRepeated, ""},
    {"LinuxContainerSecurityContext", "readonly_paths", 14, kString, kRepeated, ""},
    {"LinuxContainerSecurityContext", "seccomp", 15, kMessage, kSingular, "SecurityProfile"},
    {"LinuxContainerSecurityContext", "apparmor", 16, kMessage, kSingular, "SecurityProfile"},
    {"LinuxContainerSecurityContext", "supplemental_groups_policy", 17, kEnum, kSingular,
     "SupplementalGroupsPolicy"},

    // Capability
    {"Capability", "add_capabilities", 1, kString, kRepeated, ""},
    {"Capability", "drop_capabilities", 2, kString, kRepeated, ""},
    {"Capability", "add_ambient_capabilities", 3, kString, kRepeated, ""},

    // PodSandboxStatus
    {"PodSandboxStatus", "id", 1, kString, kSingular, ""},
    {"PodSandboxStatus", "metadata", 2, kMessage, kSingular, "PodSandboxMetadata"},
    {"PodSandboxStatus", "state", 3, kEnum, kSingular, "PodSandboxState"},
    {"PodSandboxStatus", "created_at", 4, kInt64, kSingular, ""},
    {"PodSandboxStatus", "network", 5, kMessage, kSingular, "PodSandboxNetworkStatus"},
    {"PodSandboxStatus", "linux", 6, kMessage, kSingular, "LinuxPodSandboxStatus"},
    {"PodSandboxStatus", "labels", 7, kString, kMap, ""},
    {"PodSandboxStatus", "annotations", 8, kString, kMap, ""},
    {"PodSandboxStatus", "runtime_handler", 9, kString, kSingular, ""},

    // PodSandboxNetworkStatus
    {"PodSandboxNetworkStatus", "ip", 1, kString, kSingular, ""},
    {"PodSandboxNetworkStatus", "additional_ips", 2, kMessage, kRepeated, "PodIP"},

    // PodIP
    {"PodIP", "ip", 1, kString, kSingular, ""},

    // LinuxPodSandboxStatus
    {"LinuxPodSandboxStatus", "namespaces", 1, kMessage, kSingular, "Namespace"},

    // Namespace
    {"Namespace", "options", 2, kMessage, kSingular, "NamespaceOption"},

    // ContainerStatus
    {"ContainerStatus", "id", 1, kString, kSingular, ""},
    {"ContainerStatus", "metadata", 2, kMessage, kSingular, "ContainerMetadata"},
    {"ContainerStatus", "state", 3, kEnum, kSingular, "ContainerState"},
    {"ContainerStatus", "created_at", 4, kInt64, kSingular, ""},
    {"ContainerStatus", "started_at", 5, kInt64, kSingular, ""},
    {"ContainerStatus", "finished_at", 6, kInt64, kSingular, ""},
    {"ContainerStatus", "exit_code", 7, kInt32, kSingular, ""},
    {"ContainerStatus", "image", 8, kMessage, kSingular, "ImageSpec"},
    {"ContainerStatus", "image_ref", 9, kString, kSingular, ""},
    {"ContainerStatus", "reason", 10, kString, kSingular, ""},
    {"ContainerStatus", "message", 11, kString, kSingular, ""},
    {"ContainerStatus", "labels", 12, kString, kMap, ""},
    {"ContainerStatus", "annotations", 13, kString, kMap, ""},
    {"ContainerStatus", "mounts", 14, kMessage, kRepeated, "Mount"},
    {"ContainerStatus", "log_path", 15, kString, kSingular, ""},
    {"ContainerStatus", "resources", 16, kMessage, kSingular, "ContainerResources"},
    {"ContainerStatus", "image_id", 17, kString, kSingular, ""},
    {"ContainerStatus", "user", 18, kMessage, kSingular, "ContainerUser"},
    {"ContainerStatus", "stop_signal", 19, kEnum, kSingular, "Signal"},

    // ContainerResources
    {"ContainerResources", "linux", 1, kMessage, kSingular, "LinuxContainerResources"},
    {"ContainerResources", "windows", 2, kMessage, kSingular, "WindowsContainerResources"},

    // ContainerUser
    {"ContainerUser", "linux", 1, kMessage, kSingular, "LinuxContainerUser"},

    // LinuxContainerUser
    {"LinuxContainerUser", "uid", 1, kInt64, kSingular, ""},
    {"LinuxContainerUser", "gid", 2, kInt64, kSingular, ""},
    {"LinuxContainerUser", "supplemental_groups", 3, kInt64, kRepeated, ""},

    // VersionRequest
    {"VersionRequest", "version", 1, kString, kSingular, ""},

    // VersionResponse
    {"VersionResponse", "version", 1, kString, kSingular, ""},
    {"VersionResponse", "runtime_name", 2, kString, kSingular, ""},
    {"VersionResponse", "runtime_version", 3, kString, kSingular, ""},
    {"VersionResponse", "runtime_api_version", 4, kString, kSingular, ""},

    // StatusResponse
    {"StatusResponse", "status", 1, kMessage, kSingular, "RuntimeStatus"},
    {"StatusResponse", "info", 2, kString, kMap, ""},
    {"StatusResponse", "runtime_handlers", 3, kMessage, kRepeated, "RuntimeHandler"},
    {"StatusResponse", "features", 4, kMessage, kSingular, "RuntimeFeatures"},

    // RuntimeStatus
    {"RuntimeStatus", "conditions", 1, kMessage, kRepeated, "RuntimeCondition"},

    // RuntimeCondition
    {"RuntimeCondition", "type", 1, kString, kSingular, ""},
    {"RuntimeCondition", "status", 2, kBool, kSingular, ""},
    {"RuntimeCondition", "reason", 3, kString, kSingular, ""},
    {"RuntimeCondition", "message", 4, kString, kSingular, ""},

    // RuntimeHandler
    {"RuntimeHandler", "name", 1, kString, kSingular, ""},
    {"RuntimeHandler", "features", 2, kMessage, kSingular, "RuntimeHandlerFeatures"},

    // RuntimeHandlerFeatures
    {"RuntimeHandlerFeatures", "recursive_read_only_mounts", 1, kBool, kSingular, ""},
    {"RuntimeHandlerFeatures", "user_namespaces", 2, kBool, kSingular, ""},

    // RuntimeFeatures
    {"RuntimeFeatures", "supplemental_groups_policy", 1, kBool, kSingular, ""},
    {"RuntimeFeatures", "user_namespaces_host_network", 2, kBool, kSingular, ""},
};

struct RpcRow {
  const char* service;
  const char* method;
  const char* input;
  const char* output;
  bool server_streaming;
};

// Every RPC of both services, in upstream order.
constexpr RpcRow kRpcRows[] = {
    {"RuntimeService", "Version", "VersionRequest", "VersionResponse", false},
    {"RuntimeService", "RunPodSandbox", "RunPodSandboxRequest", "RunPodSandboxResponse", false},
    {"RuntimeService", "StopPodSandbox", "StopPodSandboxRequest", "StopPodSandboxResponse", false},
    {"RuntimeService", "RemovePodSandbox", "RemovePodSandboxRequest", "RemovePodSandboxResponse",
     false},
    {"RuntimeService", "PodSandboxStatus", "PodSandboxStatusRequest", "PodSandboxStatusResponse",
     false},
    {"RuntimeService", "ListPodSandbox", "ListPodSandboxRequest", "ListPodSandboxResponse", false},
    {"RuntimeService", "StreamPodSandboxes", "StreamPodSandboxesRequest",
     "StreamPodSandboxesResponse", true},
    {"RuntimeService", "CreateContainer", "CreateContainerRequest", "CreateContainerResponse",
     false},
    {"RuntimeService", "StartContainer", "StartContainerRequest", "StartContainerResponse", false},
    {"RuntimeService", "StopContainer", "StopContainerRequest", "StopContainerResponse", false},
    {"RuntimeService", "RemoveContainer", "RemoveContainerRequest", "RemoveContainerResponse",
     false},
    {"RuntimeService", "ListContainers", "ListContainersRequest", "ListContainersResponse", false},
    {"RuntimeService", "StreamContainers", "StreamContainersRequest", "StreamContainersResponse",
     true},
    {"RuntimeService", "ContainerStatus", "ContainerStatusRequest", "ContainerStatusResponse",
     false},
    {"RuntimeService", "UpdateContainerResources", "UpdateContainerResourcesRequest",
     "UpdateContainerResourcesResponse", false},
    {"RuntimeService", "ReopenContainerLog", "ReopenContainerLogRequest",
     "ReopenContainerLogResponse", false},
    {"RuntimeService", "ExecSync", "ExecSyncRequest", "ExecSyncResponse", false},
    {"RuntimeService", "Exec", "ExecRequest", "ExecResponse", false},
    {"RuntimeService", "Attach", "AttachRequest", "AttachResponse", false},
    {"RuntimeService", "PortForward", "PortForwardRequest", "PortForwardResponse", false},
    {"RuntimeService", "ContainerStats", "ContainerStatsRequest", "ContainerStatsResponse", false},
    {"RuntimeService", "ListContainerStats", "ListContainerStatsRequest",
     "ListContainerStatsResponse", false},
    {"RuntimeService", "StreamContainerStats", "StreamContainerStatsRequest",
     "StreamContainerStatsResponse", true},
    {"RuntimeService", "PodSandboxStats", "PodSandboxStatsRequest", "PodSandboxStatsResponse",
     false},
    {"RuntimeService", "ListPodSandboxStats", "ListPodSandboxStatsRequest",
     "ListPodSandboxStatsResponse", false},
    {"RuntimeService", "StreamPodSandboxStats", "StreamPodSandboxStatsRequest",
     "StreamPodSandboxStatsResponse", true},
    {"RuntimeService", "UpdateRuntimeConfig", "UpdateRuntimeConfigRequest",
     "UpdateRuntimeConfigResponse", false},
    {"RuntimeService", "Status", "StatusRequest", "StatusResponse", false},
    {"RuntimeService", "CheckpointContainer", "CheckpointContainerRequest",
     "CheckpointContainerResponse", false},
    {"RuntimeService", "GetContainerEvents", "GetEventsRequest", "ContainerEventResponse", true},
    {"RuntimeService", "ListMetricDescriptors", "ListMetricDescriptorsRequest",
     "ListMetricDescriptorsResponse", false},
    {"RuntimeService", "ListPodSandboxMetrics", "ListPodSandboxMetricsRequest",
     "ListPodSandboxMetricsResponse", false},
    {"RuntimeService", "StreamPodSandboxMetrics", "StreamPodSandboxMetricsRequest",
     "StreamPodSandboxMetricsResponse", true},
    {"RuntimeService", "RuntimeConfig", "RuntimeConfigRequest", "RuntimeConfigResponse", false},
    {"RuntimeService", "UpdatePodSandboxResources", "UpdatePodSandboxResourcesRequest",
     "UpdatePodSandboxResourcesResponse", false},
    {"ImageService", "ListImages", "ListImagesRequest", "ListImagesResponse", false},
    {"ImageService", "StreamImages", "StreamImagesRequest", "StreamImagesResponse", true},
    {"ImageService", "ImageStatus", "ImageStatusRequest", "ImageStatusResponse", false},
    {"ImageService", "PullImage", "PullImageRequest", "PullImageResponse", false},
    {"ImageService", "RemoveImage", "RemoveImageRequest", "RemoveImageResponse", false},
    {"ImageService", "ImageFsInfo", "ImageFsInfoRequest", "ImageFsInfoResponse", false},
};

struct EnumRow {
  const char* enum_name;
  const char* value;
  int number;
};

// Enums the kubelet sends or interprets, value by value.
constexpr EnumRow kEnumRows[] = {
    {"PodSandboxState", "SANDBOX_READY", 0},
    {"PodSandboxState", "SANDBOX_NOTREADY", 1},

    {"ContainerState", "CONTAINER_CREATED", 0},
    {"ContainerState", "CONTAINER_RUNNING", 1},
    {"ContainerState", "CONTAINER_EXITED", 2},
    {"ContainerState", "CONTAINER_UNKNOWN", 3},

    {"Protocol", "TCP", 0},
    {"Protocol", "UDP", 1},
    {"Protocol", "SCTP", 2},

    {"MountPropagation", "PROPAGATION_PRIVATE", 0},
    {"MountPropagation", "PROPAGATION_HOST_TO_CONTAINER", 1},
    {"MountPropagation", "PROPAGATION_BIDIRECTIONAL", 2},

    {"NamespaceMode", "POD", 0},
    {"NamespaceMode", "CONTAINER", 1},
    {"NamespaceMode", "NODE", 2},
    {"NamespaceMode", "TARGET", 3},

    {"SupplementalGroupsPolicy", "Merge", 0},
    {"SupplementalGroupsPolicy", "Strict", 1},

    {"SecurityProfile.ProfileType", "RuntimeDefault", 0},
    {"SecurityProfile.ProfileType", "Unconfined", 1},
    {"SecurityProfile.ProfileType", "Localhost", 2},

    {"ContainerEventType", "CONTAINER_CREATED_EVENT", 0},
    {"ContainerEventType", "CONTAINER_STARTED_EVENT", 1},
    {"ContainerEventType", "CONTAINER_STOPPED_EVENT", 2},
    {"ContainerEventType", "CONTAINER_DELETED_EVENT", 3},

    {"CgroupDriver", "SYSTEMD", 0},
    {"CgroupDriver", "CGROUPFS", 1},

    {"MetricType", "COUNTER", 0},
    {"MetricType", "GAUGE", 1},

    // Signal is not in kernel order; spot-check the ends and the common stop signals. Names carry
    // the SIGNAL_ prefix upstream adopted in Kubernetes 1.37 (wire format unchanged).
    {"Signal", "SIGNAL_RUNTIME_DEFAULT", 0},
    {"Signal", "SIGNAL_SIGABRT", 1},
    {"Signal", "SIGNAL_SIGHUP", 8},
    {"Signal", "SIGNAL_SIGINT", 10},
    {"Signal", "SIGNAL_SIGKILL", 13},
    {"Signal", "SIGNAL_SIGQUIT", 18},
    {"Signal", "SIGNAL_SIGSTOP", 21},
    {"Signal", "SIGNAL_SIGTERM", 23},
    {"Signal", "SIGNAL_SIGUSR1", 29},
    {"Signal", "SIGNAL_SIGUSR2", 30},
    {"Signal", "SIGNAL_SIGWINCH", 32},
    {"Signal", "SIGNAL_SIGRTMIN", 35},
    {"Signal", "SIGNAL_SIGRTMINPLUS15", 50},
    {"Signal", "SIGNAL_SIGRTMAXMINUS14", 51},
    {"Signal", "SIGNAL_SIGRTMAX", 65},
};

// Enums whose full value set is listed in kEnumRows, with their upstream value count.
constexpr struct {
  const char* enum_name;
  int value_count;
} kCompleteEnums[] = {
    {"PodSandboxState", 2},
    {"ContainerState", 4},
    {"Protocol", 3},
    {"MountPropagation", 3},
    {"NamespaceMode", 4},
    {"SupplementalGroupsPolicy", 2},
    {"SecurityProfile.ProfileType", 3},
    {"ContainerEventType", 4},
    {"CgroupDriver", 2},
    {"MetricType", 2},
    {"Signal", 66},
};

const Descriptor* FindMessage(const char* name) {
  return DescriptorPool::generated_pool()->FindMessageTypeByName(FullName(name));
}

const EnumDescriptor* FindEnum(const char* name) {
  return DescriptorPool::generated_pool()->FindEnumTypeByName(FullName(name));
}

const ServiceDescriptor* FindService(const char* name) {
  return DescriptorPool::generated_pool()->FindServiceByName(FullName(name));
}

TEST(CriApiCompatTest, ProtoFileDeclaresUpstreamPackageAndSyntax) {
  const auto* file = runtime::v1::PodSandboxConfig::descriptor()->file();
  EXPECT_EQ(file->package(), "runtime.v1");
  EXPECT_EQ(file->syntax(), google::protobuf::FileDescriptor::SYNTAX_PROTO3);
}

TEST(CriApiCompatTest, GeneratedClassesRegisterUnderUpstreamFullNames) {
  EXPECT_EQ(runtime::v1::PodSandboxConfig::descriptor(), FindMessage("PodSandboxConfig"));
  EXPECT_EQ(runtime::v1::ContainerConfig::descriptor(), FindMessage("ContainerConfig"));
  EXPECT_EQ(runtime::v1::PodSandboxStatus::descriptor(), FindMessage("PodSandboxStatus"));
  EXPECT_EQ(runtime::v1::ContainerStatus::descriptor(), FindMessage("ContainerStatus"));
  EXPECT_EQ(runtime::v1::ImageSpec::descriptor(), FindMessage("ImageSpec"));
  EXPECT_EQ(runtime::v1::VersionResponse::descriptor(), FindMessage("VersionResponse"));
  EXPECT_EQ(runtime::v1::StatusResponse::descriptor(), FindMessage("StatusResponse"));
  EXPECT_EQ(runtime::v1::PodSandboxState_descriptor(), FindEnum("PodSandboxState"));
  EXPECT_EQ(runtime::v1::ContainerState_descriptor(), FindEnum("ContainerState"));
}

TEST(CriApiCompatTest, KubeletFacingFieldsHaveUpstreamNumberTypeAndCardinality) {
  for (const FieldRow& row : kFieldRows) {
    SCOPED_TRACE(std::string(row.message) + "." + row.field);
    const Descriptor* message = FindMessage(row.message);
    ASSERT_NE(message, nullptr) << "message is missing";
    const FieldDescriptor* field = message->FindFieldByName(row.field);
    ASSERT_NE(field, nullptr) << "field is missing";

    EXPECT_EQ(field->number(), row.number);
    EXPECT_EQ(field->is_map(), row.cardinality == kMap);
    EXPECT_EQ(field->is_repeated(), row.cardinality != kSingular);
    EXPECT_EQ(field->containing_oneof(), nullptr);

    if (row.cardinality == kMap) {
      const Descriptor* entry = field->message_type();
      ASSERT_NE(entry, nullptr);
      EXPECT_EQ(entry->map_key()->type(), kString);
      EXPECT_EQ(entry->map_value()->type(), row.type);
      continue;
    }

    EXPECT_EQ(field->type(), row.type)
        << "got " << field->type_name() << ", want " << FieldDescriptor::TypeName(row.type);
    if (row.type == kMessage) {
      ASSERT_NE(field->message_type(), nullptr);
      EXPECT_EQ(field->message_type()->full_name(), FullName(row.type_name));
    } else if (row.type == kEnum) {
      ASSERT_NE(field->enum_type(), nullptr);
      EXPECT_EQ(field->enum_type()->full_name(), FullName(row.type_name));
    } else {
      EXPECT_STREQ(row.type_name, "") << "table bug: scalar row names a type";
    }
  }
}

TEST(CriApiCompatTest, FieldSetOfCoveredMessagesIsExactlyUpstreams) {
  std::map<std::string, int> rows_per_message;
  for (const FieldRow& row : kFieldRows) ++rows_per_message[row.message];

  for (const auto& [name, row_count] : rows_per_message) {
    SCOPED_TRACE(name);
    const Descriptor* message = FindMessage(name.c_str());
    ASSERT_NE(message, nullptr);
    EXPECT_EQ(message->field_count(), row_count) << "field added or removed";
    EXPECT_EQ(message->oneof_decl_count(), 0);
  }
}

TEST(CriApiCompatTest, ServicesExposeExactlyUpstreamRpcsWithUpstreamTypes) {
  std::map<std::string, int> rpcs_per_service;
  for (const RpcRow& row : kRpcRows) {
    SCOPED_TRACE(std::string(row.service) + "/" + row.method);
    ++rpcs_per_service[row.service];
    const ServiceDescriptor* service = FindService(row.service);
    ASSERT_NE(service, nullptr) << "service is missing";
    const MethodDescriptor* method = service->FindMethodByName(row.method);
    ASSERT_NE(method, nullptr) << "rpc is missing";

    EXPECT_EQ(method->input_type()->full_name(), FullName(row.input));
    EXPECT_EQ(method->output_type()->full_name(), FullName(row.output));
    EXPECT_FALSE(method->client_streaming());
    EXPECT_EQ(method->server_streaming(), row.server_streaming);
  }

  ASSERT_EQ(rpcs_per_service.size(), 2u);
  for (const auto& [name, rpc_count] : rpcs_per_service) {
    SCOPED_TRACE(name);
    EXPECT_EQ(FindService(name.c_str())->method_count(), rpc_count) << "rpc added or removed";
  }
  EXPECT_EQ(runtime::v1::PodSandboxConfig::descriptor()->file()->service_count(), 2);
}

TEST(CriApiCompatTest, GetContainerEventsIsServerStreaming) {
  const MethodDescriptor* method =
      FindService("RuntimeService")->FindMethodByName("GetContainerEvents");
  ASSERT_NE(method, nullptr);
  EXPECT_TRUE(method->server_streaming());
  EXPECT_FALSE(method->client_streaming());
  EXPECT_EQ(method->input_type(), runtime::v1::GetEventsRequest::descriptor());
  EXPECT_EQ(method->output_type(), runtime::v1::ContainerEventResponse::descriptor());
}

TEST(CriApiCompatTest, GrpcMethodPathsAreTheOnesTheKubeletDials) {
  // gRPC routes on "/<package>.<Service>/<Method>".
  auto path = [](const char* service, const char* method) {
    const MethodDescriptor* descriptor = FindService(service)->FindMethodByName(method);
    return descriptor == nullptr
               ? std::string()
               : "/" + descriptor->service()->full_name() + "/" + descriptor->name();
  };
  EXPECT_EQ(path("RuntimeService", "RunPodSandbox"), "/runtime.v1.RuntimeService/RunPodSandbox");
  EXPECT_EQ(path("RuntimeService", "Status"), "/runtime.v1.RuntimeService/Status");
  EXPECT_EQ(path("ImageService", "PullImage"), "/runtime.v1.ImageService/PullImage");
}

TEST(CriApiCompatTest, EnumValuesHaveUpstreamNumbers) {
  for (const EnumRow& row : kEnumRows) {
    SCOPED_TRACE(std::string(row.enum_name) + "." + row.value);
    const EnumDescriptor* enum_type = FindEnum(row.enum_name);
    ASSERT_NE(enum_type, nullptr) << "enum is missing";
    const EnumValueDescriptor* value = enum_type->FindValueByName(row.value);
    ASSERT_NE(value, nullptr) << "value is missing";
    EXPECT_EQ(value->number(), row.number);
  }
}

TEST(CriApiCompatTest, EnumsHaveNoValuesBeyondUpstreams) {
  for (const auto& [name, value_count] : kCompleteEnums) {
    SCOPED_TRACE(name);
    const EnumDescriptor* enum_type = FindEnum(name);
    ASSERT_NE(enum_type, nullptr);
    EXPECT_EQ(enum_type->value_count(), value_count);
  }
}

TEST(CriApiCompatTest, GeneratedEnumConstantsHaveUpstreamNumbers) {
  EXPECT_EQ(runtime::v1::SANDBOX_READY, 0);
  EXPECT_EQ(runtime::v1::SANDBOX_NOTREADY, 1);
  EXPECT_EQ(runtime::v1::CONTAINER_CREATED, 0);
  EXPECT_EQ(runtime::v1::CONTAINER_RUNNING, 1);
  EXPECT_EQ(runtime::v1::CONTAINER_EXITED, 2);
  EXPECT_EQ(runtime::v1::CONTAINER_UNKNOWN, 3);
}

TEST(CriApiCompatTest, SignalEnumeratorsCoexistWithPosixSignalMacros) {
  // This file includes <csignal> before api.pb.h; unprefixed enumerators (SIGTERM, ...) would be
  // rewritten by the POSIX macros and the generated header would not compile.
  EXPECT_EQ(runtime::v1::SIGNAL_SIGTERM, 23);
  EXPECT_EQ(runtime::v1::SIGNAL_SIGKILL, 13);
  EXPECT_EQ(runtime::v1::Signal_Name(runtime::v1::SIGNAL_SIGTERM), "SIGNAL_SIGTERM");
  EXPECT_NE(static_cast<int>(runtime::v1::SIGNAL_SIGTERM), SIGTERM);  // CRI numbering differs.
}

// The tests below pin actual bytes, encoded by hand from upstream field numbers with the minimal
// encoder here (independent of the protobuf runtime), so they hold even if a descriptor table
// above were edited in step with a broken .proto.

constexpr int kVarintWireType = 0;
constexpr int kLengthDelimitedWireType = 2;

std::string Varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

std::string Key(int field_number, int wire_type) {
  return Varint((static_cast<uint64_t>(field_number) << 3) | wire_type);
}

std::string VarintField(int field_number, uint64_t value) {
  return Key(field_number, kVarintWireType) + Varint(value);
}

std::string LengthDelimited(int field_number, const std::string& payload) {
  return Key(field_number, kLengthDelimitedWireType) + Varint(payload.size()) + payload;
}

// True if parsing left bytes that no declared field claimed, i.e. a field number mismatch.
bool HasUnknownFields(const google::protobuf::Message& message) {
  return !message.GetReflection()->GetUnknownFields(message).empty();
}

TEST(CriApiCompatTest, HandEncoderProducesCanonicalProtobufKeys) {
  EXPECT_EQ(Key(1, kLengthDelimitedWireType), "\x0a");
  EXPECT_EQ(Key(4, kVarintWireType), "\x20");
  EXPECT_EQ(Key(18, kLengthDelimitedWireType), "\x92\x01");
  EXPECT_EQ(Key(19, kVarintWireType), "\x98\x01");
  EXPECT_EQ(Varint(137), "\x89\x01");
}

TEST(CriApiCompatTest, PodSandboxMetadataSerializesToUpstreamBytes) {
  runtime::v1::PodSandboxMetadata metadata;
  metadata.set_name("web");
  metadata.set_uid("u1");
  metadata.set_namespace_("ns");
  metadata.set_attempt(2);

  const std::string expected = LengthDelimited(1, "web") + LengthDelimited(2, "u1") +
                               LengthDelimited(3, "ns") + VarintField(4, 2);
  EXPECT_EQ(metadata.SerializeAsString(), expected);
}

TEST(CriApiCompatTest, ImageSpecHighNumberedFieldsSerializeWithUpstreamTags) {
  runtime::v1::ImageSpec spec;
  spec.set_image("sha256:abc");
  spec.set_user_specified_image("nginx:1");
  spec.set_runtime_handler("kata");
  spec.set_image_ref("sha256:def");

  const std::string expected = LengthDelimited(1, "sha256:abc") + LengthDelimited(18, "nginx:1") +
                               LengthDelimited(19, "kata") + LengthDelimited(20, "sha256:def");
  EXPECT_EQ(spec.SerializeAsString(), expected);
}

TEST(CriApiCompatTest, ContainerStatusParsesUpstreamEncodedBytes) {
  const std::string wire =
      LengthDelimited(1, "c1") +
      LengthDelimited(2, LengthDelimited(1, "app") + VarintField(2, 3)) +  // metadata
      VarintField(3, 2) +                                                  // CONTAINER_EXITED
      VarintField(7, 137) +                                                // exit_code
      LengthDelimited(10, "OOMKilled") +                                   // reason
      LengthDelimited(18, LengthDelimited(1, VarintField(1, 1000))) +      // user.linux.uid
      VarintField(19, 13);                                                 // SIGKILL

  runtime::v1::ContainerStatus status;
  ASSERT_TRUE(status.ParseFromString(wire));
  EXPECT_EQ(status.id(), "c1");
  EXPECT_EQ(status.metadata().name(), "app");
  EXPECT_EQ(status.metadata().attempt(), 3u);
  EXPECT_EQ(status.state(), runtime::v1::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 137);
  EXPECT_EQ(status.reason(), "OOMKilled");
  EXPECT_EQ(status.user().linux().uid(), 1000);
  EXPECT_EQ(status.stop_signal(), runtime::v1::SIGNAL_SIGKILL);
  EXPECT_FALSE(HasUnknownFields(status));
}

TEST(CriApiCompatTest, PodSandboxConfigParsesUpstreamEncodedBytes) {
  const std::string wire =
      LengthDelimited(1, LengthDelimited(1, "web") + LengthDelimited(3, "default")) +
      LengthDelimited(2, "web-0") +
      LengthDelimited(6, LengthDelimited(1, "app") + LengthDelimited(2, "web")) +  // labels
      LengthDelimited(8, LengthDelimited(1, "/kubepods/pod1"));  // linux.cgroup_parent

  runtime::v1::PodSandboxConfig config;
  ASSERT_TRUE(config.ParseFromString(wire));
  EXPECT_EQ(config.metadata().name(), "web");
  EXPECT_EQ(config.metadata().namespace_(), "default");
  EXPECT_EQ(config.hostname(), "web-0");
  ASSERT_EQ(config.labels().size(), 1u);
  EXPECT_EQ(config.labels().at("app"), "web");
  EXPECT_TRUE(config.annotations().empty());
  EXPECT_EQ(config.linux().cgroup_parent(), "/kubepods/pod1");
  EXPECT_FALSE(HasUnknownFields(config));
}

TEST(CriApiCompatTest, PodSandboxStatusSerializesToUpstreamBytes) {
  runtime::v1::PodSandboxStatus status;
  status.set_id("p1");
  status.set_state(runtime::v1::SANDBOX_NOTREADY);
  status.set_created_at(5);
  status.mutable_network()->set_ip("10.0.0.2");
  status.mutable_network()->add_additional_ips()->set_ip("fd00::2");
  status.set_runtime_handler("vm");

  const std::string expected =
      LengthDelimited(1, "p1") + VarintField(3, 1) + VarintField(4, 5) +
      LengthDelimited(
          5, LengthDelimited(1, "10.0.0.2") + LengthDelimited(2, LengthDelimited(1, "fd00::2"))) +
      LengthDelimited(9, "vm");
  EXPECT_EQ(status.SerializeAsString(), expected);
}

TEST(CriApiCompatTest, StatusResponseParsesRuntimeConditionsFromUpstreamBytes) {
  const std::string condition = LengthDelimited(1, "RuntimeReady") + VarintField(2, 1);
  const std::string handler =
      LengthDelimited(1, "kata") + LengthDelimited(2, VarintField(2, 1));  // user_namespaces
  const std::string wire = LengthDelimited(1, LengthDelimited(1, condition)) +
                           LengthDelimited(3, handler) + LengthDelimited(4, VarintField(1, 1));

  runtime::v1::StatusResponse response;
  ASSERT_TRUE(response.ParseFromString(wire));
  ASSERT_EQ(response.status().conditions_size(), 1);
  EXPECT_EQ(response.status().conditions(0).type(), "RuntimeReady");
  EXPECT_TRUE(response.status().conditions(0).status());
  ASSERT_EQ(response.runtime_handlers_size(), 1);
  EXPECT_EQ(response.runtime_handlers(0).name(), "kata");
  EXPECT_TRUE(response.runtime_handlers(0).features().user_namespaces());
  EXPECT_TRUE(response.features().supplemental_groups_policy());
  EXPECT_FALSE(HasUnknownFields(response));
}

TEST(CriApiCompatTest, VersionResponseSerializesToUpstreamBytes) {
  runtime::v1::VersionResponse version;
  version.set_version("0.1.0");
  version.set_runtime_name("vmlet");
  version.set_runtime_version("1.2.3");
  version.set_runtime_api_version("v1");

  const std::string expected = LengthDelimited(1, "0.1.0") + LengthDelimited(2, "vmlet") +
                               LengthDelimited(3, "1.2.3") + LengthDelimited(4, "v1");
  EXPECT_EQ(version.SerializeAsString(), expected);
}

}  // namespace
}  // namespace vmlet::cri

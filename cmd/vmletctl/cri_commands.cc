// `vmletctl cri ...`: the CRI call by call, for scripts, as crictl offers it
// for containers. This file holds the dispatcher and the read-only calls;
// cri_lifecycle.cc holds those that create, start, stop and remove.
#include <cstdio>
#include <map>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/output.h"

namespace vmlet::ctl {
namespace {

constexpr char kCriUsage[] =
    "usage: vmletctl [options] cri COMMAND [ARGS]\n"
    "\n"
    "The CRI, one call at a time, for scripts. IDs may be given as unique prefixes.\n"
    "\n"
    "Commands:\n"
    "  version          the runtime's name and versions\n"
    "  status           the runtime's conditions (RuntimeReady, NetworkReady)\n"
    "  pods             pod sandboxes\n"
    "  ps               containers (VMs), including exited ones\n"
    "  images           images on the node\n"
    "  inspect ID       a container's verbose status, as JSON\n"
    "  inspectp POD_ID  a pod sandbox's verbose status, as JSON\n"
    "  runp             RunPodSandbox (--name N ...); prints the pod id\n"
    "  create POD_ID    CreateContainer (--name N --image IMAGE ...); prints the container id\n"
    "  start ID         StartContainer\n"
    "  stop ID          StopContainer (--timeout S)\n"
    "  rm ID            RemoveContainer\n"
    "  stopp POD_ID     StopPodSandbox\n"
    "  rmp POD_ID       RemovePodSandbox\n"
    "  stats [ID]       containers' CPU, memory and disk use (-a: all containers)\n"
    "  statsp [POD_ID]  pod sandboxes' CPU, memory and network use\n"
    "  update ID        UpdateContainerResources (--cpu-quota, --memory, --cpuset-cpus ...)\n"
    "  events           container events as they happen, until interrupted\n"
    "  runtime-config   RuntimeConfig (the cgroup driver)\n"
    "\n"
    "Run \"vmletctl cri COMMAND --help\" for the options of a command.\n";

// A FlagSet for a read-only command with `usage_line` and -o.
struct Query {
  Query(Client& client, std::string_view name, std::string_view usage_line)
      : output(client.options().output),
        flags(StrCat("cri ", name), StrCat("usage: vmletctl [options] cri ", usage_line,
                                           "\n\nOptions:\n  -o FORMAT   table, json or yaml\n")) {
    flags.AddOutput(&output);
  }
  // Whether to print the response as JSON or YAML rather than a table.
  bool structured() const { return output != "table"; }

  std::string output;
  FlagSet flags;
};

// "RUNNING" for CONTAINER_RUNNING.
std::string StateName(v1::ContainerState state) {
  std::string name = v1::ContainerState_Name(state);
  return name.starts_with("CONTAINER_") ? name.substr(10) : name;
}

int Version(Client& client, Args args) {
  Query query(client, "version", "version\n\nThe runtime's name and versions.");
  if (auto done = query.flags.Parse(args, 0, 0)) return *done;
  v1::VersionRequest request;
  request.set_version("v1");
  v1::VersionResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::Version, request, &response);
  if (!status.ok()) return FailRpc("Version", status);
  if (query.structured()) {
    PrintMessage(response, query.output);
    return kExitOk;
  }
  std::printf("Version:  %s\nRuntimeName:  %s\nRuntimeVersion:  %s\nRuntimeApiVersion:  %s\n",
              response.version().c_str(), response.runtime_name().c_str(),
              response.runtime_version().c_str(), response.runtime_api_version().c_str());
  return kExitOk;
}

int Status(Client& client, Args args) {
  Query query(client, "status", "status\n\nThe runtime's conditions.");
  if (auto done = query.flags.Parse(args, 0, 0)) return *done;
  v1::StatusRequest request;
  request.set_verbose(true);
  v1::StatusResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::Status, request, &response);
  if (!status.ok()) return FailRpc("Status", status);
  if (query.structured()) {
    PrintMessage(response, query.output);
    return kExitOk;
  }
  Table table({"CONDITION", "STATUS", "REASON", "MESSAGE"});
  for (const v1::RuntimeCondition& condition : response.status().conditions()) {
    table.AddRow({condition.type(), condition.status() ? "true" : "false", condition.reason(),
                  condition.message()});
  }
  table.Print();
  return kExitOk;
}

int Pods(Client& client, Args args) {
  Query query(client, "pods", "pods\n\nPod sandboxes.");
  if (auto done = query.flags.Parse(args, 0, 0)) return *done;
  v1::ListPodSandboxResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::ListPodSandbox,
                                       v1::ListPodSandboxRequest(), &response);
  if (!status.ok()) return FailRpc("ListPodSandbox", status);
  if (query.structured()) {
    PrintMessage(response, query.output);
    return kExitOk;
  }
  Table table({"POD ID", "AGE", "STATE", "NAME", "NAMESPACE", "ATTEMPT"});
  for (const v1::PodSandbox& pod : response.items()) {
    table.AddRow({ShortId(pod.id()), Age(pod.created_at()),
                  pod.state() == v1::SANDBOX_READY ? "Ready" : "NotReady", pod.metadata().name(),
                  pod.metadata().namespace_(), StrCat(pod.metadata().attempt())});
  }
  table.Print();
  return kExitOk;
}

int Containers(Client& client, Args args) {
  Query query(client, "ps", "ps\n\nContainers (the pods' VMs), exited ones included.");
  if (auto done = query.flags.Parse(args, 0, 0)) return *done;
  v1::ListContainersResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::ListContainers,
                                       v1::ListContainersRequest(), &response);
  if (!status.ok()) return FailRpc("ListContainers", status);
  if (query.structured()) {
    PrintMessage(response, query.output);
    return kExitOk;
  }
  Table table({"CONTAINER", "IMAGE", "AGE", "STATE", "NAME", "ATTEMPT", "POD ID"});
  for (const v1::Container& container : response.containers()) {
    table.AddRow({ShortId(container.id()), container.image().image(), Age(container.created_at()),
                  StateName(container.state()), container.metadata().name(),
                  StrCat(container.metadata().attempt()), ShortId(container.pod_sandbox_id())});
  }
  table.Print();
  return kExitOk;
}

int Images(Client& client, Args args) {
  Query query(client, "images", "images\n\nThe VM images on the node.");
  if (auto done = query.flags.Parse(args, 0, 0)) return *done;
  v1::ListImagesResponse response;
  grpc::Status status =
      client.Image(&v1::ImageService::Stub::ListImages, v1::ListImagesRequest(), &response);
  if (!status.ok()) return FailRpc("ListImages", status);
  if (query.structured()) {
    PrintMessage(response, query.output);
    return kExitOk;
  }
  Table table({"IMAGE", "IMAGE ID", "SIZE"});
  for (const v1::Image& image : response.images()) {
    const std::string& name = image.repo_tags().empty() ? image.spec().image() : image.repo_tags(0);
    table.AddRow({name.empty() ? "<none>" : name, ShortId(image.id()), FormatBytes(image.size())});
  }
  table.Print();
  return kExitOk;
}

// The format of a command that prints only JSON or YAML: YAML when the
// global -o asks for it, else JSON.
std::string StructuredDefault(const Client& client) {
  return client.options().output == "yaml" ? "yaml" : "json";
}

// Prints {"status": <status>, "info": {<key>: <value>}} as crictl inspect
// does: an info value that is JSON (vmletd's are) is embedded as such, any
// other as a string.
void PrintVerbose(const google::protobuf::Message& status,
                  const google::protobuf::Map<std::string, std::string>& info,
                  std::string_view format) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string status_json;
  (void)google::protobuf::util::MessageToJsonString(status, &status_json, options);
  std::string json = StrCat("{\"status\":", status_json, ",\"info\":{");
  bool first = true;
  // Sorted, so that the output is stable.
  for (const auto& [key, value] : std::map<std::string, std::string>(info.begin(), info.end())) {
    google::protobuf::Value parsed;
    const bool is_json = google::protobuf::util::JsonStringToMessage(value, &parsed).ok();
    StrAppend(&json, first ? "" : ",", JsonQuote(key), ":", is_json ? value : JsonQuote(value));
    first = false;
  }
  json += "}}";
  PrintStructured(json, format);
}

int Inspect(Client& client, Args args) {
  std::string output = StructuredDefault(client);
  FlagSet flags("cri inspect",
                "usage: vmletctl [options] cri inspect ID [-o json|yaml]\n\n"
                "The verbose ContainerStatus of container ID, as JSON (the default) or YAML.\n");
  flags.AddChoice("-o|--output", &output, {"json", "yaml"});
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  v1::ContainerStatusRequest request;
  request.set_container_id(flags.positional()[0]);
  request.set_verbose(true);
  v1::ContainerStatusResponse response;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::ContainerStatus, request, &response);
  if (!status.ok()) return FailRpc("ContainerStatus", status);
  PrintVerbose(response.status(), response.info(), output);
  return kExitOk;
}

int InspectPod(Client& client, Args args) {
  std::string output = StructuredDefault(client);
  FlagSet flags(
      "cri inspectp",
      "usage: vmletctl [options] cri inspectp POD_ID [-o json|yaml]\n\n"
      "The verbose PodSandboxStatus of pod sandbox POD_ID, as JSON (the default) or YAML.\n");
  flags.AddChoice("-o|--output", &output, {"json", "yaml"});
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  v1::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(flags.positional()[0]);
  request.set_verbose(true);
  v1::PodSandboxStatusResponse response;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::PodSandboxStatus, request, &response);
  if (!status.ok()) return FailRpc("PodSandboxStatus", status);
  PrintVerbose(response.status(), response.info(), output);
  return kExitOk;
}

}  // namespace

int CriCommand(Client& client, Args args) {
  if (args.empty()) {
    std::fputs(kCriUsage, stderr);
    return kExitUsage;
  }
  const std::string& command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kCriUsage, stdout);
    return kExitOk;
  }
  using Handler = int (*)(Client&, Args);
  // Not reformatted: clang-format would put one command a line.
  // clang-format off
  static const std::map<std::string, Handler, std::less<>> kCommands = {
      {"version", Version},  {"status", Status},    {"pods", Pods},           {"ps", Containers},
      {"images", Images},    {"inspect", Inspect},  {"inspectp", InspectPod}, {"runp", CriRunPod},
      {"create", CriCreate}, {"start", CriStart},   {"stop", CriStop},        {"rm", CriRemove},
      {"stopp", CriStopPod}, {"rmp", CriRemovePod},
      {"stats", CriStats},   {"statsp", CriStatsPod}, {"update", CriUpdate},  {"events", CriEvents},
      {"runtime-config", CriRuntimeConfig},
  };
  // clang-format on
  auto it = kCommands.find(command);
  if (it == kCommands.end())
    return UsageError("cri", StrCat("unknown command \"cri ", command, "\""));
  return it->second(client, args.subspan(1));
}

}  // namespace vmlet::ctl

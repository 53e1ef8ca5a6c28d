// vmletctl: the vmlet command-line tool. This first version is a CRI client
// for people and scripts:
//
//   vmletctl [--endpoint unix:///run/vmlet/cri.sock] [--timeout SECONDS] [-o table|json]
//            cri version|status|pods|ps
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/str_util.h"
#include "cri/v1/api.grpc.pb.h"

namespace {

namespace v1 = ::runtime::v1;
using ::vmlet::StrCat;

constexpr char kUsage[] =
    "usage: vmletctl [options] cri COMMAND\n"
    "\n"
    "Commands:\n"
    "  cri version   the runtime's name and versions\n"
    "  cri status    the runtime's conditions (RuntimeReady, NetworkReady)\n"
    "  cri pods      pod sandboxes\n"
    "  cri ps        containers (VMs), including exited ones\n"
    "\n"
    "Options:\n"
    "  --endpoint ADDR   CRI socket, a path or unix://PATH (default unix:///run/vmlet/cri.sock,\n"
    "                    or $VMLET_ENDPOINT)\n"
    "  --timeout SEC     per-call deadline in seconds (default 10)\n"
    "  -o FORMAT         table (default) or json\n"
    "  --help            print this help\n";

struct Options {
  std::string endpoint = "unix:///run/vmlet/cri.sock";
  int timeout_seconds = 10;
  std::string output = "table";
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "vmletctl: %s\n", message.c_str());
  return 1;
}

int FailRpc(std::string_view what, const grpc::Status& status) {
  return Fail(StrCat(what, ": ", status.error_message(), " (code ",
                     static_cast<int>(status.error_code()), ")"));
}

void SetDeadline(grpc::ClientContext& context, const Options& options) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(options.timeout_seconds));
}

void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.add_whitespace = true;
  json_options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, json_options);
  std::fputs(json.c_str(), stdout);
}

std::string Age(int64_t created_at_ns) {
  absl::Duration age = absl::Now() - absl::FromUnixNanos(created_at_ns);
  if (age < absl::Minutes(1)) return StrCat(absl::ToInt64Seconds(age), "s");
  if (age < absl::Hours(1)) return StrCat(absl::ToInt64Minutes(age), "m");
  if (age < absl::Hours(48)) return StrCat(absl::ToInt64Hours(age), "h");
  return StrCat(absl::ToInt64Hours(age) / 24, "d");
}

std::string ShortId(const std::string& id) { return id.substr(0, 13); }

int Version(v1::RuntimeService::Stub& stub, const Options& options) {
  grpc::ClientContext context;
  SetDeadline(context, options);
  v1::VersionRequest request;
  request.set_version("v1");
  v1::VersionResponse response;
  grpc::Status status = stub.Version(&context, request, &response);
  if (!status.ok()) return FailRpc("Version", status);
  if (options.output == "json") {
    PrintJson(response);
    return 0;
  }
  std::printf("Version:  %s\nRuntimeName:  %s\nRuntimeVersion:  %s\nRuntimeApiVersion:  %s\n",
              response.version().c_str(), response.runtime_name().c_str(),
              response.runtime_version().c_str(), response.runtime_api_version().c_str());
  return 0;
}

int Status(v1::RuntimeService::Stub& stub, const Options& options) {
  grpc::ClientContext context;
  SetDeadline(context, options);
  v1::StatusRequest request;
  request.set_verbose(true);
  v1::StatusResponse response;
  grpc::Status status = stub.Status(&context, request, &response);
  if (!status.ok()) return FailRpc("Status", status);
  if (options.output == "json") {
    PrintJson(response);
    return 0;
  }
  std::printf("%-14s %-6s %-24s %s\n", "CONDITION", "STATUS", "REASON", "MESSAGE");
  for (const v1::RuntimeCondition& condition : response.status().conditions()) {
    std::printf("%-14s %-6s %-24s %s\n", condition.type().c_str(),
                condition.status() ? "true" : "false", condition.reason().c_str(),
                condition.message().c_str());
  }
  return 0;
}

int Pods(v1::RuntimeService::Stub& stub, const Options& options) {
  grpc::ClientContext context;
  SetDeadline(context, options);
  v1::ListPodSandboxResponse response;
  grpc::Status status = stub.ListPodSandbox(&context, v1::ListPodSandboxRequest(), &response);
  if (!status.ok()) return FailRpc("ListPodSandbox", status);
  if (options.output == "json") {
    PrintJson(response);
    return 0;
  }
  std::printf("%-13s  %-5s  %-8s  %-30s  %-20s  %s\n", "POD ID", "AGE", "STATE", "NAME",
              "NAMESPACE", "ATTEMPT");
  for (const v1::PodSandbox& pod : response.items()) {
    std::printf("%-13s  %-5s  %-8s  %-30s  %-20s  %u\n", ShortId(pod.id()).c_str(),
                Age(pod.created_at()).c_str(),
                pod.state() == v1::SANDBOX_READY ? "Ready" : "NotReady",
                pod.metadata().name().c_str(), pod.metadata().namespace_().c_str(),
                pod.metadata().attempt());
  }
  return 0;
}

int Containers(v1::RuntimeService::Stub& stub, const Options& options) {
  grpc::ClientContext context;
  SetDeadline(context, options);
  v1::ListContainersResponse response;
  grpc::Status status = stub.ListContainers(&context, v1::ListContainersRequest(), &response);
  if (!status.ok()) return FailRpc("ListContainers", status);
  if (options.output == "json") {
    PrintJson(response);
    return 0;
  }
  std::printf("%-13s  %-30s  %-5s  %-8s  %-20s  %-7s  %s\n", "CONTAINER", "IMAGE", "AGE", "STATE",
              "NAME", "ATTEMPT", "POD ID");
  for (const v1::Container& container : response.containers()) {
    std::string state = v1::ContainerState_Name(container.state());
    if (state.starts_with("CONTAINER_")) state = state.substr(10);
    std::printf("%-13s  %-30s  %-5s  %-8s  %-20s  %-7u  %s\n", ShortId(container.id()).c_str(),
                container.image().image().c_str(), Age(container.created_at()).c_str(),
                state.c_str(), container.metadata().name().c_str(), container.metadata().attempt(),
                ShortId(container.pod_sandbox_id()).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const char* env = std::getenv("VMLET_ENDPOINT"); env != nullptr && *env != '\0') {
    options.endpoint = env;
  }
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&](std::string_view name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vmletctl: %s needs a value\n", std::string(name).c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--endpoint" || arg == "-r") {
      options.endpoint = value(arg);
    } else if (arg == "--timeout") {
      const char* text = value(arg);
      if (!absl::SimpleAtoi(text, &options.timeout_seconds) || options.timeout_seconds <= 0) {
        return Fail(StrCat("--timeout \"", text, "\": expected a positive number of seconds"));
      }
    } else if (arg == "-o" || arg == "--output") {
      options.output = value(arg);
      if (options.output != "table" && options.output != "json") {
        return Fail(StrCat("-o \"", options.output, "\": expected table or json"));
      }
    } else if (arg.starts_with("-")) {
      std::fprintf(stderr, "vmletctl: unknown option \"%s\"\n\n%s", argv[i], kUsage);
      return 2;
    } else {
      words.emplace_back(arg);
    }
  }
  if (words.size() != 2 || words[0] != "cri") {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (options.endpoint.starts_with("/")) options.endpoint = "unix://" + options.endpoint;
  auto channel = grpc::CreateChannel(options.endpoint, grpc::InsecureChannelCredentials());
  auto stub = v1::RuntimeService::NewStub(channel);
  const std::string& command = words[1];
  if (command == "version") return Version(*stub, options);
  if (command == "status") return Status(*stub, options);
  if (command == "pods") return Pods(*stub, options);
  if (command == "ps") return Containers(*stub, options);
  std::fprintf(stderr, "vmletctl: unknown command \"cri %s\"\n\n%s", command.c_str(), kUsage);
  return 2;
}

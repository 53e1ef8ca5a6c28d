// `vmletctl spec apply|get|list|delete|validate|render` and `vmletctl vm
// status`: VM specs and what a pod's VM runs with, through the VmSpecs
// service on the VM-spec socket. Specs are read and printed in their YAML
// form (vmspec/yaml.h); JSON output uses the same (proto) field names, so
// that what `spec get` prints can be applied again.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "base/file_util.h"
#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/output.h"
#include "vmspec/yaml.h"

namespace vmlet::ctl {
namespace {

using Stub = vmspec_v1::VmSpecs::Stub;

constexpr char kDefaultNamespace[] = "default";

constexpr char kSpecUsage[] =
    "usage: vmletctl [options] spec COMMAND [ARGS]\n"
    "\n"
    "VM specs: named descriptions of pet VMs (CPU, memory, NUMA, firmware, disks,\n"
    "NICs, devices, cloud-init) that a pod binds to with the annotation\n"
    "vmlet.io/vmspec: NAME (a spec of the pod's namespace). A spec is YAML with\n"
    "metadata (namespace, name, labels) and spec (the machine); see\n"
    "api/vmlet/vmspec/v1/vmspec.proto for every field.\n"
    "\n"
    "Commands:\n"
    "  apply -f FILE|-          create or update the specs of FILE (several documents\n"
    "                           separated by ---); prints each one's generation\n"
    "  get NAME                 a spec, as YAML (-o json for JSON)\n"
    "  list                     the specs of a namespace (-A: all), also \"ls\"\n"
    "  delete NAME              delete a spec (running VMs keep what they started with)\n"
    "  validate -f FILE|-       check specs without storing them\n"
    "  render -f FILE|- [--pod [NS/]NAME]\n"
    "                           the libvirt domain XML a spec gives a pod\n"
    "\n"
    "Namespaces default to \"default\" (-n NS). Changing specs needs root or the group\n"
    "vmspec_group of vmletd's configuration. Run \"vmletctl spec COMMAND --help\" for\n"
    "the options of a command.\n";

std::string KeyName(const vmspec_v1::VmSpec& spec) {
  return StrCat(spec.metadata().namespace_(), "/", spec.metadata().name());
}

// The contents of `path`, or of stdin for "-", of at most the size
// ParseVmSpecYaml takes (one byte more, so that it reports the excess).
absl::StatusOr<std::string> ReadInput(const std::string& path) {
  std::FILE* file = path == "-" ? stdin : std::fopen(path.c_str(), "re");
  if (file == nullptr) {
    return absl::NotFoundError(StrCat("cannot open \"", path, "\": ", std::strerror(errno)));
  }
  std::string contents;
  char buffer[16384];
  size_t n = 0;
  while (contents.size() <= vmspec::kMaxVmSpecYamlBytes &&
         (n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    contents.append(buffer, n);
  }
  const bool failed = std::ferror(file) != 0;
  if (file != stdin) std::fclose(file);
  if (failed) return absl::DataLossError(StrCat("cannot read \"", path, "\""));
  return contents;
}

// The specs of `path`, each without a namespace given `ns`. `ns_given`: -n
// was given, and a spec of another namespace is an error.
absl::StatusOr<std::vector<vmspec_v1::VmSpec>> ReadSpecs(const std::string& path,
                                                         const std::string& ns, bool ns_given) {
  absl::StatusOr<std::string> yaml = ReadInput(path);
  if (!yaml.ok()) return yaml.status();
  absl::StatusOr<std::vector<vmspec_v1::VmSpec>> specs =
      vmspec::ParseVmSpecYaml(*yaml, path == "-" ? "<stdin>" : path);
  if (!specs.ok()) return specs.status();
  if (specs->empty()) {
    return absl::InvalidArgumentError(StrCat("\"", path, "\" holds no VM spec"));
  }
  for (vmspec_v1::VmSpec& spec : *specs) {
    vmspec_v1::ObjectMeta* meta = spec.mutable_metadata();
    if (meta->namespace_().empty()) {
      meta->set_namespace_(ns);
    } else if (ns_given && meta->namespace_() != ns) {
      return absl::InvalidArgumentError(StrCat("VM spec \"", KeyName(spec), "\" is of namespace \"",
                                               meta->namespace_(), "\", but -n says \"", ns, "\""));
    }
  }
  return specs;
}

// `message` as JSON with proto field names (as the YAML form has them),
// printed as `format` ("json" or "yaml") says.
void PrintProto(const google::protobuf::Message& message, std::string_view format) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  PrintStructured(json, format);
}

// The -n|--namespace option: `ns` and whether it was given.
struct NamespaceFlag {
  std::string ns;
  void Add(FlagSet& flags) { flags.AddString("-n|--namespace", &ns); }
  bool given() const { return !ns.empty(); }
  std::string value() const { return ns.empty() ? kDefaultNamespace : ns; }
};

int Apply(Client& client, Args args) {
  std::string file;
  NamespaceFlag ns;
  FlagSet flags("spec apply",
                "usage: vmletctl [options] spec apply -f FILE|- [-n NS]\n"
                "\n"
                "Creates or updates each spec of FILE (\"-\": stdin; several YAML documents\n"
                "separated by ---) and prints its generation, which grows by one whenever the\n"
                "spec changes. Pods running a VM with an older generation are listed: the new\n"
                "one takes effect at their VM's next start.\n"
                "\n"
                "Options:\n"
                "  -f, --filename FILE   the specs\n"
                "  -n, --namespace NS    for specs that name none (default \"default\"); a spec\n"
                "                        of another namespace is then an error\n");
  flags.AddString("-f|--filename", &file);
  ns.Add(flags);
  if (auto done = flags.Parse(args, 0, 0)) return *done;
  if (file.empty()) return flags.Error("-f FILE is required (\"-\" for stdin)");
  absl::StatusOr<std::vector<vmspec_v1::VmSpec>> specs = ReadSpecs(file, ns.value(), ns.given());
  if (!specs.ok()) return Fail(ToStd(specs.status().message()));
  int code = kExitOk;
  for (const vmspec_v1::VmSpec& spec : *specs) {
    vmspec_v1::ApplyRequest request;
    *request.mutable_vm_spec() = spec;
    vmspec_v1::ApplyResponse response;
    grpc::Status status =
        client.Call(client.VmSpecs(), &Stub::Apply, request, &response, CallKind::kChange);
    if (!status.ok()) {
      code = FailRpc(StrCat("applying VM spec \"", KeyName(spec), "\""), status);
      continue;
    }
    std::printf("vmspec %s applied (generation %lld)\n", KeyName(response.vm_spec()).c_str(),
                static_cast<long long>(response.vm_spec().metadata().generation()));
    if (!response.pending_restart().empty()) {
      std::string pods;
      for (const std::string& id : response.pending_restart()) StrAppend(&pods, " ", ShortId(id));
      std::printf("  pending restart (takes effect at the VM's next start):%s\n", pods.c_str());
    }
  }
  return code;
}

int Get(Client& client, Args args) {
  NamespaceFlag ns;
  std::string output = client.options().output == "json" ? "json" : "yaml";
  FlagSet flags("spec get",
                "usage: vmletctl [options] spec get NAME [-n NS] [-o yaml|json]\n"
                "\n"
                "Prints a spec with what vmletd set: generation, times (Unix nanoseconds) and\n"
                "source (\"api\", or the file of vmspec_dir it came from). The output can be\n"
                "applied again.\n"
                "\n"
                "Options:\n"
                "  -n, --namespace NS    the spec's namespace (default \"default\")\n"
                "  -o, --output FORMAT   yaml (default) or json\n");
  ns.Add(flags);
  flags.AddChoice("-o|--output", &output, {"yaml", "json"});
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  vmspec_v1::GetRequest request;
  request.set_namespace_(ns.value());
  request.set_name(flags.positional()[0]);
  vmspec_v1::GetResponse response;
  grpc::Status status = client.Call(client.VmSpecs(), &Stub::Get, request, &response);
  if (!status.ok()) return FailRpc("Get", status);
  if (output == "json") {
    PrintProto(response.vm_spec(), "json");
  } else {
    std::fputs(vmspec::VmSpecToYaml(response.vm_spec()).c_str(), stdout);
  }
  return kExitOk;
}

// "4", or "-" when the spec leaves it to the pod.
std::string Or(const std::string& value) { return value.empty() ? "-" : value; }

int List(Client& client, Args args) {
  NamespaceFlag ns;
  bool all = false;
  std::string output = client.options().output;
  FlagSet flags("spec list",
                "usage: vmletctl [options] spec list [-n NS | -A] [-o table|json|yaml]\n"
                "\n"
                "The specs of a namespace (default \"default\") or of all, sorted by namespace\n"
                "and name. VCPUS and MEMORY are \"-\" where the spec leaves them to the pod.\n"
                "\n"
                "Options:\n"
                "  -n, --namespace NS       the namespace\n"
                "  -A, --all-namespaces     every namespace\n"
                "  -o, --output FORMAT      table (default), json or yaml\n");
  ns.Add(flags);
  flags.AddBool("-A|--all-namespaces", &all);
  flags.AddOutput(&output);
  if (auto done = flags.Parse(args, 0, 0)) return *done;
  if (all && ns.given()) return flags.Error("-A and -n cannot be combined");
  vmspec_v1::ListRequest request;
  if (!all) request.set_namespace_(ns.value());
  vmspec_v1::ListResponse response;
  grpc::Status status = client.Call(client.VmSpecs(), &Stub::List, request, &response);
  if (!status.ok()) return FailRpc("List", status);
  if (output != "table") {
    PrintProto(response, output);
    return kExitOk;
  }
  Table table({"NAMESPACE", "NAME", "GENERATION", "VCPUS", "MEMORY", "SOURCE", "AGE"});
  for (const vmspec_v1::VmSpec& spec : response.vm_specs()) {
    const uint32_t vcpus = spec.spec().cpu().count();
    table.AddRow({spec.metadata().namespace_(), spec.metadata().name(),
                  StrCat(spec.metadata().generation()), vcpus > 0 ? StrCat(vcpus) : "-",
                  Or(spec.spec().memory().size()), spec.metadata().source(),
                  Age(spec.metadata().created_at())});
  }
  table.Print();
  return kExitOk;
}

int Delete(Client& client, Args args) {
  NamespaceFlag ns;
  FlagSet flags("spec delete",
                "usage: vmletctl [options] spec delete NAME [-n NS]\n"
                "\n"
                "Deletes a spec; deleting one that does not exist succeeds. VMs running with\n"
                "it keep what they started with. A spec from a file of vmspec_dir is deleted\n"
                "by removing it from its file.\n"
                "\n"
                "Options:\n"
                "  -n, --namespace NS    the spec's namespace (default \"default\")\n");
  ns.Add(flags);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  vmspec_v1::DeleteRequest request;
  request.set_namespace_(ns.value());
  request.set_name(flags.positional()[0]);
  vmspec_v1::DeleteResponse response;
  grpc::Status status =
      client.Call(client.VmSpecs(), &Stub::Delete, request, &response, CallKind::kChange);
  if (!status.ok()) return FailRpc("Delete", status);
  std::printf("vmspec %s/%s deleted\n", request.namespace_().c_str(), request.name().c_str());
  return kExitOk;
}

int Validate(Client& client, Args args) {
  std::string file;
  NamespaceFlag ns;
  FlagSet flags("spec validate",
                "usage: vmletctl [options] spec validate -f FILE|- [-n NS]\n"
                "\n"
                "Makes vmletd check each spec of FILE as apply would, without storing it.\n"
                "Exits 1 when one is invalid, naming the field.\n"
                "\n"
                "Options:\n"
                "  -f, --filename FILE   the specs (\"-\": stdin)\n"
                "  -n, --namespace NS    for specs that name none (default \"default\")\n");
  flags.AddString("-f|--filename", &file);
  ns.Add(flags);
  if (auto done = flags.Parse(args, 0, 0)) return *done;
  if (file.empty()) return flags.Error("-f FILE is required (\"-\" for stdin)");
  absl::StatusOr<std::vector<vmspec_v1::VmSpec>> specs = ReadSpecs(file, ns.value(), ns.given());
  if (!specs.ok()) return Fail(ToStd(specs.status().message()));
  int code = kExitOk;
  for (const vmspec_v1::VmSpec& spec : *specs) {
    vmspec_v1::ValidateRequest request;
    *request.mutable_vm_spec() = spec;
    vmspec_v1::ValidateResponse response;
    grpc::Status status = client.Call(client.VmSpecs(), &Stub::Validate, request, &response);
    if (!status.ok()) {
      code = FailRpc(StrCat("VM spec \"", KeyName(spec), "\""), status);
      continue;
    }
    std::printf("vmspec %s is valid\n", KeyName(spec).c_str());
  }
  return code;
}

int Render(Client& client, Args args) {
  std::string file;
  std::string pod;
  NamespaceFlag ns;
  FlagSet flags(
      "spec render",
      "usage: vmletctl [options] spec render -f FILE|- [--pod [NS/]NAME] [-n NS]\n"
      "\n"
      "Prints the libvirt domain XML that the spec of FILE (one document) gives the\n"
      "pod, with the pod's own annotations, resources, image and network. Without\n"
      "--pod, or for a pod that does not exist, a placeholder pod is used.\n"
      "\n"
      "Options:\n"
      "  -f, --filename FILE   the spec (\"-\": stdin)\n"
      "  --pod [NS/]NAME       the pod, by namespace and name\n"
      "  -n, --namespace NS    the pod's and the spec's namespace (default \"default\")\n");
  flags.AddString("-f|--filename", &file);
  flags.AddString("--pod", &pod);
  ns.Add(flags);
  if (auto done = flags.Parse(args, 0, 0)) return *done;
  if (file.empty()) return flags.Error("-f FILE is required (\"-\" for stdin)");
  std::string pod_ns = ns.value();
  std::string pod_name = pod;
  const size_t slash = pod.find('/');
  if (slash != std::string::npos) {
    pod_ns = pod.substr(0, slash);
    pod_name = pod.substr(slash + 1);
    if (ns.given() && pod_ns != ns.value()) {
      return flags.Error(StrCat("--pod \"", pod, "\" and -n \"", ns.value(), "\" disagree"));
    }
  }
  absl::StatusOr<std::vector<vmspec_v1::VmSpec>> specs =
      ReadSpecs(file, pod_ns, ns.given() || slash != std::string::npos);
  if (!specs.ok()) return Fail(ToStd(specs.status().message()));
  if (specs->size() != 1) {
    return Fail(
        StrCat("\"", file, "\" holds ", specs->size(), " VM specs: expected one to render"));
  }
  vmspec_v1::RenderRequest request;
  *request.mutable_vm_spec() = (*specs)[0];
  if (!pod_name.empty()) {
    request.set_pod_namespace(pod_ns);
    request.set_pod_name(pod_name);
  }
  vmspec_v1::RenderResponse response;
  grpc::Status status = client.Call(client.VmSpecs(), &Stub::Render, request, &response);
  if (!status.ok()) return FailRpc("Render", status);
  std::fputs(response.domain_xml().c_str(), stdout);
  if (!response.domain_xml().ends_with('\n')) std::fputc('\n', stdout);
  return kExitOk;
}

}  // namespace

int SpecCommand(Client& client, Args args) {
  if (args.empty()) {
    std::fputs(kSpecUsage, stderr);
    return kExitUsage;
  }
  const std::string& command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kSpecUsage, stdout);
    return kExitOk;
  }
  Args rest = args.subspan(1);
  if (command == "apply") return Apply(client, rest);
  if (command == "get") return Get(client, rest);
  if (command == "list" || command == "ls") return List(client, rest);
  if (command == "delete" || command == "rm") return Delete(client, rest);
  if (command == "validate") return Validate(client, rest);
  if (command == "render") return Render(client, rest);
  return UsageError("spec", StrCat("unknown command \"spec ", command, "\""));
}

int VmStatus(Client& client, Args args) {
  NamespaceFlag ns;
  std::string output = client.options().output;
  FlagSet flags("vm status",
                "usage: vmletctl [options] vm status POD [-n NS] [-o table|json|yaml]\n"
                "\n"
                "What a pod's VM runs with: its state, the VM spec and generation it started\n"
                "with (and whether a newer one waits for its next start), vCPUs and memory as\n"
                "they are now, addresses, the guest agent and the accelerator. POD is NAME (of\n"
                "-n NS, default \"default\") or NS/NAME.\n"
                "\n"
                "Options:\n"
                "  -n, --namespace NS    the pod's namespace\n"
                "  -o, --output FORMAT   table (default), json or yaml\n");
  ns.Add(flags);
  flags.AddOutput(&output);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  const std::string& pod = flags.positional()[0];
  vmspec_v1::GetVmStatusRequest request;
  request.set_pod_namespace(ns.value());
  request.set_pod_name(pod);
  if (const size_t slash = pod.find('/'); slash != std::string::npos) {
    request.set_pod_namespace(pod.substr(0, slash));
    request.set_pod_name(pod.substr(slash + 1));
  }
  vmspec_v1::VmStatus response;
  grpc::Status status = client.Call(client.VmSpecs(), &Stub::GetVmStatus, request, &response);
  if (!status.ok()) return FailRpc("GetVmStatus", status);
  if (output != "table") {
    PrintMessage(response, output);
    return kExitOk;
  }
  std::string vmspec = "-";
  if (!response.vmspec_name().empty()) {
    vmspec = StrCat(response.vmspec_name(), " (generation ", response.vmspec_generation());
    if (response.spec_pending()) {
      StrAppend(&vmspec, "; generation ", response.vmspec_current_generation(),
                " at the VM's next start");
    }
    StrAppend(&vmspec, ")");
  }
  std::string addresses;
  for (const std::string& address : response.addresses()) {
    StrAppend(&addresses, addresses.empty() ? "" : ", ", address);
  }
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"pod", StrCat(request.pod_namespace(), "/", request.pod_name())},
      {"pod id", Or(response.pod_sandbox_id())},
      {"container id", Or(response.container_id())},
      {"state", Or(response.state())},
      {"domain", Or(response.domain_name())},
      {"vmspec", vmspec},
      {"vcpus", response.vcpus() > 0 ? StrCat(response.vcpus()) : "-"},
      {"memory", response.memory_bytes() > 0 ? FormatBytes(response.memory_bytes()) : "-"},
      {"addresses", Or(addresses)},
      {"guest agent", response.guest_agent_connected() ? "connected" : "not connected"},
      {"accelerator", Or(response.accelerator())},
  };
  for (const auto& [field, value] : rows)
    std::printf("%-14s%s\n", (field + ":").c_str(), value.c_str());
  return kExitOk;
}

}  // namespace vmlet::ctl

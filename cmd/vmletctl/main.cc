// vmletctl: the vmlet command-line tool. Runs VM pods by hand and talks to
// vmletd's CRI socket (and, for VM specs, VM status, image pull and import
// and the console, its VM-spec socket), call by call, for scripts:
//
//   vmletctl [--endpoint unix:///run/vmlet/cri.sock]
//            [--vmspec-endpoint unix:///run/vmlet/vmspec.sock] [--timeout SECONDS]
//            [-o table|json|yaml] run|rm|ls|logs|spec|image|cri|doctor ...
//
// This file parses the options that precede the command and dispatches;
// each command parses its own (flags.h).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "base/str_util.h"
#include "cmd/vmletctl/client.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"

namespace vmlet::ctl {
namespace {

constexpr char kUsage[] =
    "usage: vmletctl [options] COMMAND [ARGS]\n"
    "\n"
    "VM pods:\n"
    "  run NAME --image IMAGE   run a VM pod (sandbox, VM container, start)\n"
    "  rm NAME                  stop and remove a VM pod\n"
    "  ls                       VM pods: state, vCPUs, memory, image, age (also \"vm ls\")\n"
    "  logs NAME [-f]           a VM pod's serial console log\n"
    "  exec NAME [-i] [-t] -- CMD [ARG]\n"
    "                           run a command in the guest (needs qemu-guest-agent)\n"
    "  console NAME             the guest's serial console, interactive (leave with ^])\n"
    "  attach NAME              the same through the CRI's Attach, as kubectl attach\n"
    "  port-forward NAME [LOCAL:]REMOTE...\n"
    "                           forward local TCP ports to the pod, as kubectl port-forward\n"
    "  vm status NAME           what a pod's VM runs with: VM spec and generation, size, agent\n"
    "\n"
    "VM specs (see \"vmletctl spec --help\"):\n"
    "  spec apply -f FILE       create or update VM specs from YAML\n"
    "  spec get|list|delete     show, list or delete VM specs\n"
    "  spec validate|render -f FILE\n"
    "                           check a spec, or print the domain XML it gives a pod\n"
    "\n"
    "Images (see \"vmletctl image --help\"):\n"
    "  image pull REF           pull from a registry or URL, with progress; prints the id\n"
    "  image ls                 images on the node (also \"images\")\n"
    "  image rm REF...          remove images\n"
    "  image inspect REF        an image's origin, layout and config, as JSON\n"
    "  image import FILE --name REF\n"
    "                           store a qcow2 or raw disk file as an image; prints the id\n"
    "\n"
    "The node:\n"
    "  doctor                   check KVM, libvirt, QEMU, CNI, state and sockets; explain fixes\n"
    "\n"
    "The CRI, one call at a time, for scripts (see \"vmletctl cri --help\"):\n"
    "  cri version|status|pods|ps|images|inspect|inspectp\n"
    "  cri runp|create|start|stop|rm|stopp|rmp\n"
    "\n"
    "Options (before the command):\n"
    "  --endpoint ADDR   CRI socket, a path or unix://PATH (default unix:///run/vmlet/cri.sock,\n"
    "                    or $VMLET_ENDPOINT)\n"
    "  --vmspec-endpoint ADDR\n"
    "                    vmletd's own API (specs, VM status, image pull and import, console),\n"
    "                    as --endpoint (default unix:///run/vmlet/vmspec.sock, or\n"
    "                    $VMLET_VMSPEC_ENDPOINT)\n"
    "  --timeout SEC     per-call deadline in seconds (default 10 for queries, 120 for calls\n"
    "                    that create, start, stop or remove; none for image pull\n"
    "                    and import)\n"
    "  -o FORMAT         table (default), json or yaml, for the listing commands\n"
    "  --help            print this help\n"
    "\n"
    "Run \"vmletctl COMMAND --help\" for the options of a command.\n";

using Handler = int (*)(Client&, Args);

// The VM pod commands, also reachable as "vm COMMAND".
const std::map<std::string, Handler, std::less<>>& PodCommands() {
  static const auto* const kCommands = new std::map<std::string, Handler, std::less<>>{
      {"run", RunPod}, {"rm", RemovePod},    {"ls", ListPods},   {"logs", Logs},
      {"exec", Exec},  {"console", Console}, {"attach", Attach}, {"port-forward", PortForward}};
  return *kCommands;
}

// Parses the options before the command into `options`; sets `*next` to
// the index of the command. Returns nullopt to go on, or the exit code.
std::optional<int> ParseGlobalOptions(const std::vector<std::string>& args, GlobalOptions& options,
                                      size_t* next) {
  size_t i = 0;
  for (; i < args.size() && args[i].starts_with("-"); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(0, equals);
    std::string value;
    if (name != "--endpoint" && name != "-r" && name != "--vmspec-endpoint" &&
        name != "--timeout" && name != "-o" && name != "--output") {
      return UsageError("", StrCat("unknown option \"", name, "\""));
    }
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return UsageError("", StrCat(name, " needs a value"));
    }
    if (name == "--endpoint" || name == "-r") {
      options.endpoint = value;
    } else if (name == "--vmspec-endpoint") {
      options.vmspec_endpoint = value;
    } else if (name == "--timeout") {
      int64_t seconds = 0;
      if (!absl::SimpleAtoi(value, &seconds) || seconds <= 0) {
        return UsageError("", StrCat("--timeout \"", value,
                                     "\" is invalid: expected a positive number of seconds"));
      }
      options.timeout_seconds = seconds;
    } else {
      if (value != "table" && value != "json" && value != "yaml") {
        return UsageError(
            "", StrCat(name, " \"", value, "\" is invalid: expected table, json or yaml"));
      }
      options.output = value;
    }
  }
  *next = i;
  return std::nullopt;
}

int Main(const std::vector<std::string>& args) {
  GlobalOptions options;
  if (const char* env = std::getenv("VMLET_ENDPOINT"); env != nullptr && *env != '\0') {
    options.endpoint = env;
  }
  if (const char* env = std::getenv("VMLET_VMSPEC_ENDPOINT"); env != nullptr && *env != '\0') {
    options.vmspec_endpoint = env;
  }
  size_t next = 0;
  if (auto done = ParseGlobalOptions(args, options, &next)) return *done;
  if (next == args.size()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  std::string_view command = args[next];
  Args rest = Args(args).subspan(next + 1);
  if (command == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (command == "vm") {
    constexpr char kNeedsCommand[] =
        "\"vm\" needs a command: run, rm, ls, logs, exec, console, attach, port-forward, status";
    if (rest.empty()) return UsageError("", kNeedsCommand);
    command = rest[0];
    rest = rest.subspan(1);
    if (command == "status") {
      Client client(options);
      return VmStatus(client, rest);
    }
    if (!PodCommands().contains(command)) {
      return UsageError("", StrCat("unknown command \"vm ", command, "\""));
    }
  }
  Client client(options);
  if (command == "cri") return CriCommand(client, rest);
  if (command == "spec") return SpecCommand(client, rest);
  if (command == "image") return ImageCommand(client, rest);
  if (command == "images") return ListImages(client, rest);
  if (command == "doctor") return Doctor(client, rest);
  auto it = PodCommands().find(command);
  if (it == PodCommands().end()) {
    return UsageError("", StrCat("unknown command \"", command, "\""));
  }
  return it->second(client, rest);
}

}  // namespace
}  // namespace vmlet::ctl

int main(int argc, char** argv) {
  return vmlet::ctl::Main(std::vector<std::string>(argv + 1, argv + argc));
}

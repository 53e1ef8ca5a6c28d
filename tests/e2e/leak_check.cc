#include "tests/e2e/leak_check.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>

#include "absl/status/statusor.h"
#include "base/str_util.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

constexpr char kVirsh[] = "/usr/bin/virsh";
constexpr char kNsenterPath[] = "/usr/bin/nsenter";

// `argv`'s output, or nullopt (with a line in `errors`) when it failed.
std::optional<std::string> Output(const std::vector<std::string>& argv,
                                  std::vector<std::string>* errors) {
  absl::StatusOr<ExitStatus> result = RunCommand(argv, absl::Seconds(30));
  std::string command;
  for (const std::string& arg : argv) StrAppend(&command, command.empty() ? "" : " ", arg);
  if (!result.ok()) {
    errors->push_back(StrCat("running \"", command, "\": ", result.status().message()));
    return std::nullopt;
  }
  if (result->code != 0) {
    errors->push_back(
        StrCat("\"", command, "\" exited with ", result->code, " (signal ", result->signal, ")"));
    return std::nullopt;
  }
  return result->output;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// Every entry under `root`, relative, directories with a trailing '/'.
void ListTree(const std::string& root, std::set<std::string>* out,
              std::vector<std::string>* errors) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::exists(root, error)) return;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, error);
  for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    std::error_code type_error;
    const bool is_dir = it->is_directory(type_error) && !it->is_symlink(type_error);
    std::string relative = fs::relative(it->path(), root, type_error).string();
    out->insert(is_dir ? relative + "/" : relative);
  }
  // An entry that vanished while it was listed is no error: it is gone.
  if (error && error != std::errc::no_such_file_or_directory) {
    errors->push_back(StrCat("listing \"", root, "\": ", error.message()));
  }
}

bool IsTemporary(const std::string& path) {
  if (path.find(".tmp-") != std::string::npos || path.ends_with(".tmp") ||
      path.ends_with(".tmp/")) {
    return true;
  }
  // images/tmp/ itself belongs to the store; what is in it is a pull, an
  // import or a removal in progress.
  return path.starts_with("images/tmp/") && path != "images/tmp/";
}

void SnapshotDomains(const LeakScope& scope, LeakSnapshot* snapshot) {
  if (scope.pod_namespace.empty() && scope.vm_instance.empty()) return;
  std::optional<std::string> names =
      Output({kVirsh, "-c", "qemu:///system", "list", "--all", "--name"}, &snapshot->errors);
  if (!names) return;
  // Domain names replace what libvirt does not allow by '-' (domain_builder.cc).
  std::string ns = scope.pod_namespace;
  for (char& c : ns) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '-';
  }
  for (const std::string& name : Lines(*names)) {
    if (!name.starts_with("vmlet-")) continue;
    if (!ns.empty() && name.find(ns) != std::string::npos) {
      snapshot->domains.insert(name);
      continue;
    }
    if (scope.vm_instance.empty()) continue;
    // Another test's or vmletd's domain may vanish meanwhile: no error.
    std::vector<std::string> ignored;
    std::optional<std::string> xml =
        Output({kVirsh, "-c", "qemu:///system", "dumpxml", name}, &ignored);
    if (xml && xml->find(StrCat(">", scope.vm_instance, "<")) != std::string::npos) {
      snapshot->domains.insert(name);
    }
  }
}

void SnapshotMounts(const LeakScope& scope, LeakSnapshot* snapshot) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  if (!mountinfo) {
    snapshot->errors.push_back("reading /proc/self/mountinfo");
    return;
  }
  const std::string prefix = scope.dir + "/";
  for (std::string line; std::getline(mountinfo, line);) {
    // "<id> <parent> <major:minor> <root> <mount point> ..."
    std::istringstream fields(line);
    std::string id, parent, device, root, point;
    fields >> id >> parent >> device >> root >> point;
    if (point.starts_with(prefix)) snapshot->mounts.insert(point.substr(prefix.size()));
  }
}

void SnapshotNode(const LeakScope& scope, LeakSnapshot* snapshot) {
  const std::vector<std::string> in_node = {kNsenterPath, "--net=" + scope.node_netns, "--"};
  auto in = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), in_node.begin(), in_node.end());
    return Output(argv, &snapshot->errors);
  };
  if (std::optional<std::string> links = in({"ip", "-o", "link", "show"})) {
    for (const std::string& line : Lines(*links)) {
      // "7: vethab12cd34@if2: <BROADCAST,...> ..."
      size_t start = line.find(": ");
      if (start == std::string::npos) continue;
      start += 2;
      size_t end = line.find_first_of("@:", start);
      snapshot->links.insert(line.substr(start, end - start));
    }
  }
  if (std::optional<std::string> rules = in({"iptables-save"})) {
    for (const std::string& line : Lines(*rules)) {
      const bool chain = line.starts_with(":CNI-") && !line.starts_with(":CNI-HOSTPORT-");
      // Rules of a pod carry the container (sandbox) id in their comment.
      const bool pod_rule = line.starts_with("-A ") && line.find("id: ") != std::string::npos;
      const bool pod_chain_rule =
          line.starts_with("-A CNI-") && !line.starts_with("-A CNI-HOSTPORT-");
      if (chain) {
        // ":CNI-abc - [0:0]": the name only, not the counters.
        snapshot->iptables.insert(StrCat("chain ", line.substr(1, line.find(' ') - 1)));
      } else if (pod_rule || pod_chain_rule) {
        snapshot->iptables.insert(StrCat("rule ", line));
      }
    }
  }
}

void SnapshotIpam(const LeakScope& scope, LeakSnapshot* snapshot) {
  std::set<std::string> files;
  ListTree(scope.ipam_dir, &files, &snapshot->errors);
  for (const std::string& file : files) {
    const std::string name = file.substr(file.rfind('/', file.size() - 2) + 1);
    if (file.ends_with("/") || name == "lock" || name.starts_with("last_reserved_ip")) continue;
    snapshot->ipam.insert(file);
  }
}

void SnapshotProcesses(const LeakScope& scope, LeakSnapshot* snapshot) {
  namespace fs = std::filesystem;
  std::error_code error;
  const std::string self = std::to_string(::getpid());
  for (fs::directory_iterator it("/proc", error); !error && it != fs::directory_iterator();
       it.increment(error)) {
    const std::string pid = it->path().filename().string();
    if (pid.empty() || !std::isdigit(static_cast<unsigned char>(pid[0])) || pid == self) continue;
    std::ifstream file(it->path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(scope.dir) == std::string::npos) continue;
    // vmletd itself (possibly behind nsenter or env) is not a leak.
    if (cmdline.find("vmletd") != std::string::npos) continue;
    snapshot->processes.insert(StrCat(cmdline.substr(0, 200), " (pid ", pid, ")"));
  }
}

void AddNew(const char* kind, const std::set<std::string>& before,
            const std::set<std::string>& after, std::vector<std::string>* leaks) {
  for (const std::string& item : after) {
    if (!before.contains(item)) leaks->push_back(StrCat(kind, " ", item));
  }
}

}  // namespace

LeakSnapshot TakeLeakSnapshot(const LeakScope& scope) {
  LeakSnapshot snapshot;
  SnapshotDomains(scope, &snapshot);
  if (!scope.state_dir.empty()) ListTree(scope.state_dir, &snapshot.state, &snapshot.errors);
  if (!scope.run_dir.empty()) ListTree(scope.run_dir, &snapshot.run, &snapshot.errors);
  if (!scope.dir.empty()) {
    SnapshotMounts(scope, &snapshot);
    SnapshotProcesses(scope, &snapshot);
  }
  if (!scope.node_netns.empty()) SnapshotNode(scope, &snapshot);
  if (!scope.ipam_dir.empty()) SnapshotIpam(scope, &snapshot);
  return snapshot;
}

std::vector<std::string> Diff(const LeakSnapshot& before, const LeakSnapshot& after) {
  std::vector<std::string> leaks;
  AddNew("domain", before.domains, after.domains, &leaks);
  for (const std::string& path : after.state) {
    if (IsTemporary(path)) {
      leaks.push_back(StrCat("temporary file ", path,
                             before.state.contains(path) ? " (there before too)" : ""));
    } else if (!before.state.contains(path)) {
      leaks.push_back(StrCat("state file ", path));
    }
  }
  AddNew("run_dir file", before.run, after.run, &leaks);
  AddNew("mount", before.mounts, after.mounts, &leaks);
  AddNew("link", before.links, after.links, &leaks);
  AddNew("IPAM allocation", before.ipam, after.ipam, &leaks);
  AddNew("iptables", before.iptables, after.iptables, &leaks);
  AddNew("process", before.processes, after.processes, &leaks);
  for (const std::string& error : before.errors)
    leaks.push_back(StrCat("snapshot before: ", error));
  for (const std::string& error : after.errors) leaks.push_back(StrCat("snapshot after: ", error));
  return leaks;
}

std::string FormatLeaks(const std::vector<std::string>& leaks) {
  std::string text;
  for (const std::string& leak : leaks) StrAppend(&text, "  ", leak, "\n");
  return text;
}

}  // namespace vmlet::e2e

// `vmletctl doctor`: the node operator's pre-flight and health check. Runs
// every check of doctor_checks.h and doctor_boot.h, and asks the running
// vmletd (if any) whether it is ready; prints the findings with their fixes
// and exits 1 when one of them blocks running VMs.
//
// Threading: single-threaded, as the whole CLI is.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/doctor_boot.h"
#include "cmd/vmletctl/doctor_checks.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/output.h"

namespace vmlet::ctl {
namespace {

using doctor::Finding;
using doctor::Severity;

constexpr char kUsage[] =
    "usage: vmletctl [options] doctor [--config FILE] [--no-boot-test] [--kernel FILE]\n"
    "                                 [--boot-timeout SEC] [-o table|json|yaml]\n"
    "\n"
    "Checks what vmletd needs on this node (its config, KVM, QEMU booting a kernel,\n"
    "libvirt, UEFI firmware, the CNI network, its directories and sockets, the clock,\n"
    "cgroups, swap) and asks the running vmletd whether it is ready. Each problem comes\n"
    "with a fix.\n"
    "\n"
    "Options:\n"
    "  --config FILE       vmletd's config (default /etc/vmlet/vmlet.yaml, whose absence means\n"
    "                      the defaults); its cri_socket is asked unless --endpoint is given\n"
    "  --no-boot-test      do not boot a kernel under QEMU (the kvm-boot check)\n"
    "  --kernel FILE       the kernel to boot (default /boot/vmlinuz-$(uname -r), else the\n"
    "                      newest /boot/vmlinuz-*)\n"
    "  --boot-timeout SEC  how long the kernel may take to start (default 60)\n"
    "  -o FORMAT           table (default), json or yaml\n"
    "\n"
    "Exit codes: 0 when nothing blocks running VMs (warnings may remain), 1 when a check\n"
    "FAILs, 2 for bad usage.\n";

// The default endpoint, which doctor replaces with the config's cri_socket.
bool IsDefaultEndpoint(const std::string& endpoint) { return endpoint == GlobalOptions().endpoint; }

// "sockets": the socket files of `config`, then whether vmletd answers the
// CRI at the endpoint and reports itself ready.
std::vector<Finding> CheckSockets(const Client& client, const Config& config,
                                  const std::string& config_path) {
  const std::vector<doctor::SocketFile> files = {doctor::InspectSocket(config.cri_socket),
                                                 doctor::InspectSocket(config.vmspec_socket)};
  std::vector<Finding> findings = doctor::CheckSocketFiles(files);

  GlobalOptions options = client.options();
  if (IsDefaultEndpoint(options.endpoint)) options.endpoint = StrCat("unix://", config.cri_socket);
  if (!options.timeout_seconds.has_value()) options.timeout_seconds = 3;
  Client cri(options);
  const std::string& endpoint = options.endpoint;
  const std::string start_fix =
      StrCat("systemctl start vmletd (or run vmletd --config ", config_path, ")");

  v1::VersionRequest version_request;
  version_request.set_version("v1");
  v1::VersionResponse version;
  grpc::Status status = cri.Runtime(&v1::RuntimeService::Stub::Version, version_request, &version);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    findings.push_back(doctor::Warn("sockets",
                                    StrCat("vmletd is not running: nothing answers on ", endpoint,
                                           " (", status.error_message(), ")"),
                                    start_fix));
    return findings;
  }
  if (!status.ok()) {
    findings.push_back(doctor::Fail(
        "sockets",
        StrCat(endpoint, " does not answer the CRI's Version: ", status.error_message(), " (",
               CodeName(status.error_code()), ")"),
        "look at vmletd's log (journalctl -u vmletd) and restart it (systemctl restart vmletd)"));
    return findings;
  }
  v1::StatusResponse runtime_status;
  status = cri.Runtime(&v1::RuntimeService::Stub::Status, v1::StatusRequest(), &runtime_status);
  if (!status.ok()) {
    findings.push_back(doctor::Fail(
        "sockets",
        StrCat(endpoint, " answers Version but not Status: ", status.error_message(), " (",
               CodeName(status.error_code()), ")"),
        "look at vmletd's log (journalctl -u vmletd) and restart it (systemctl restart vmletd)"));
    return findings;
  }

  std::vector<std::string> ready;
  std::string not_ready;
  std::string fix;
  for (const v1::RuntimeCondition& condition : runtime_status.status().conditions()) {
    if (condition.status()) {
      ready.push_back(condition.type());
      continue;
    }
    StrAppend(&not_ready, not_ready.empty() ? "" : "; ", condition.type(), " is false (",
              condition.reason(), ": ", condition.message(), ")");
    const std::string_view see = condition.type() == "NetworkReady"   ? "see the cni check"
                                 : condition.type() == "RuntimeReady" ? "see the libvirt check"
                                                                      : "see vmletd's log";
    StrAppend(&fix, fix.empty() ? "" : "; ", condition.type(), ": ", see);
  }
  std::string sockets;
  for (const doctor::SocketFile& file : files) {
    if (file.is_socket) {
      StrAppend(&sockets, sockets.empty() ? "; sockets " : ", ", file.path, " ",
                doctor::DescribeSocket(file));
    }
  }
  const std::string answers =
      StrCat(version.runtime_name(), " ", version.runtime_version(), " (CRI ",
             version.runtime_api_version(), ") answers on ", endpoint);
  if (!not_ready.empty()) {
    findings.push_back(doctor::Fail(
        "sockets",
        StrCat(answers, " but ", not_ready, ": the kubelet keeps the node NotReady", sockets),
        StrCat(fix, "; vmletd checks again at every Status call")));
    return findings;
  }
  std::string conditions;
  for (size_t i = 0; i < ready.size(); ++i) {
    StrAppend(&conditions, i == 0 ? "" : i + 1 == ready.size() ? " and " : ", ", ready[i]);
  }
  findings.push_back(doctor::Ok(
      "sockets",
      StrCat(answers, ", ", conditions.empty() ? "no conditions" : conditions, sockets)));
  return findings;
}

void PrintTable(const std::vector<Finding>& findings) {
  constexpr size_t kStatusWidth = 8;
  constexpr size_t kCheckWidth = 12;
  auto pad = [](std::string text, size_t width) {
    if (text.size() < width) text.append(width - text.size(), ' ');
    return text;
  };
  std::string out = StrCat(pad("STATUS", kStatusWidth), pad("CHECK", kCheckWidth), "FINDING\n");
  int failures = 0;
  int warnings = 0;
  for (const Finding& finding : findings) {
    StrAppend(&out, pad(std::string(doctor::SeverityName(finding.severity)), kStatusWidth),
              pad(finding.check, kCheckWidth), finding.message, "\n");
    if (!finding.fix.empty()) {
      StrAppend(&out, std::string(kStatusWidth + kCheckWidth, ' '), "fix: ", finding.fix, "\n");
    }
    failures += finding.severity == Severity::kFail;
    warnings += finding.severity == Severity::kWarn;
  }
  const std::string warned =
      warnings == 0 ? "" : StrCat("; ", warnings, warnings == 1 ? " warning" : " warnings");
  if (failures > 0) {
    StrAppend(&out, "\n", failures,
              failures == 1 ? " problem blocks running VMs" : " problems block running VMs", warned,
              "\n");
  } else {
    StrAppend(&out, "\nno problems found", warned, "\n");
  }
  std::fputs(out.c_str(), stdout);
}

void PrintStructuredFindings(const std::vector<Finding>& findings, const std::string& format) {
  std::string json = "[";
  for (size_t i = 0; i < findings.size(); ++i) {
    const Finding& finding = findings[i];
    StrAppend(&json, i == 0 ? "" : ",", "{\"check\":", JsonQuote(finding.check),
              ",\"status\":", JsonQuote(doctor::SeverityName(finding.severity)),
              ",\"message\":", JsonQuote(finding.message), ",\"fix\":", JsonQuote(finding.fix),
              "}");
  }
  json += "]";
  PrintStructured(json, format);
}

}  // namespace

int Doctor(Client& client, Args args) {
  std::string config_flag;
  bool no_boot_test = false;
  std::string kernel;
  int64_t boot_timeout = 60;
  std::string output = client.options().output;
  FlagSet flags("doctor", kUsage);
  flags.AddString("--config", &config_flag);
  flags.AddBool("--no-boot-test", &no_boot_test);
  flags.AddString("--kernel", &kernel);
  flags.AddInt("--boot-timeout", &boot_timeout, 1);
  flags.AddOutput(&output);
  if (auto done = flags.Parse(args, 0, 0)) return *done;

  const std::string config_path =
      config_flag.empty() ? std::string(kDefaultConfigPath) : config_flag;
  std::vector<Finding> findings;
  doctor::ConfigCheck config_check = doctor::CheckConfig(config_path, !config_flag.empty());
  findings.push_back(config_check.finding);
  const Config& config = config_check.config;

  findings.push_back(doctor::CheckKvm(config.accelerator, config_path));
  std::string qemu;
  Finding qemu_finding = doctor::CheckQemu(&qemu);
  doctor::BootCheck boot{.skip = no_boot_test,
                         .qemu = qemu,
                         .kernel = kernel,
                         .accelerator = config.accelerator,
                         .timeout = absl::Seconds(boot_timeout),
                         .config_path = config_path};
  if (!boot.skip && !boot.qemu.empty() && ::isatty(STDERR_FILENO)) {
    std::fprintf(stderr, "vmletctl doctor: booting a kernel under QEMU (-accel %s, up to %lld s)\n",
                 doctor::WouldUseKvm(config.accelerator) ? "kvm" : "tcg",
                 static_cast<long long>(boot_timeout));
  }
  findings.push_back(doctor::CheckKvmBoot(boot));
  findings.push_back(doctor::CheckLibvirt(config.libvirt_uri));
  findings.push_back(std::move(qemu_finding));
  findings.push_back(doctor::CheckOvmf());
  findings.push_back(doctor::CheckCni(config, config_path));
  constexpr uint64_t kMiB = 1024 * 1024;
  findings.push_back(
      doctor::CheckDirectory("state-dir", config.state_dir, 1024 * kMiB, 10 * 1024 * kMiB));
  findings.push_back(doctor::CheckDirectory("run-dir", config.run_dir, 16 * kMiB, 0));
  for (Finding& finding : CheckSockets(client, config, config_path)) {
    findings.push_back(std::move(finding));
  }
  findings.push_back(doctor::CheckClock());
  findings.push_back(doctor::CheckCgroup());
  findings.push_back(doctor::CheckSwap());

  if (output == "table") {
    PrintTable(findings);
  } else {
    PrintStructuredFindings(findings, output);
  }
  for (const Finding& finding : findings) {
    if (finding.severity == Severity::kFail) return kExitFailure;
  }
  return kExitOk;
}

}  // namespace vmlet::ctl

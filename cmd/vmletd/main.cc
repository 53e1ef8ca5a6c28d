// vmletd: the vmlet CRI runtime daemon.
//
//   vmletd [--config FILE] [--print-config] [--list-fault-points]
//
// Reads /etc/vmlet/vmlet.yaml (or FILE), serves the CRI on cri_socket and
// runs until SIGTERM or SIGINT, then shuts down gracefully. With
// --print-config it prints the configuration in effect and exits; with
// --list-fault-points, the fault-injection points (base/fault_point.h).
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "base/fault_point.h"
#include "base/logging.h"
#include "cmd/vmletd/config.h"
#include "cmd/vmletd/server.h"
#include "vmlet_build_config.h"

namespace {

constexpr vmlet::Logger kLog("vmletd");

constexpr char kUsage[] =
    "usage: vmletd [--config FILE] [--print-config]\n"
    "\n"
    "Runs the vmlet CRI runtime: every Kubernetes pod becomes a virtual machine.\n"
    "\n"
    "  --config FILE   configuration file (default /etc/vmlet/vmlet.yaml; a missing\n"
    "                  default file means every key takes its default)\n"
    "  --print-config  print the configuration in effect as YAML (every key,\n"
    "                  defaults included) and exit\n"
    "  --list-fault-points\n"
    "                  print the names of the fault-injection points, one per line\n"
    "                  (none in a build with -Dfault_injection=false), and exit;\n"
    "                  VMLET_FAULT_KILL_AT=NAME in the environment makes vmletd\n"
    "                  SIGKILL itself at that point (for crash tests)\n"
    "  --version       print the version and exit\n"
    "  --help          print this help and exit\n";

}  // namespace

int main(int argc, char** argv) {
  std::string config_path(vmlet::kDefaultConfigPath);
  bool config_given = false;
  bool print_config = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("vmletd %s\n", VMLET_VERSION);
      return 0;
    }
    if (arg == "--list-fault-points") {
      std::fputs(vmlet::FaultPointList().c_str(), stdout);
      return 0;
    }
    if (arg == "--print-config") {
      print_config = true;
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
      config_given = true;
    } else if (arg.starts_with("--config=")) {
      config_path = std::string(arg.substr(9));
      config_given = true;
    } else {
      std::fprintf(stderr, "vmletd: unknown argument \"%s\"\n\n%s", argv[i], kUsage);
      return 2;
    }
  }

  absl::StatusOr<vmlet::Config> config = vmlet::LoadConfig(config_path, config_given);
  if (!config.ok()) {
    std::fprintf(stderr, "vmletd: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (print_config) {
    std::fputs(vmlet::RenderConfigYaml(*config).c_str(), stdout);
    return 0;
  }
  vmlet::SetLogLevel(config->log_level);
  // Before any thread starts: the armed point is read without a lock.
  if (absl::Status armed = vmlet::ArmFaultPointFromEnv(); !armed.ok()) {
    std::fprintf(stderr, "vmletd: %s\n", std::string(armed.message()).c_str());
    return 1;
  }

  // Signals are taken synchronously by the main thread; every thread that
  // gRPC starts inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  kLog.Info("vmletd {} starting (config {})", VMLET_VERSION,
            config_given ? config_path : config_path + " or defaults");
  absl::StatusOr<std::unique_ptr<vmlet::Server>> server = vmlet::Server::Start(*config);
  if (!server.ok()) {
    kLog.Error("start-up failed: {}", server.status().message());
    return 1;
  }
  sd_notify(0, fmt::format("READY=1\nSTATUS=serving the CRI on {} and the VM-spec API on {}",
                           config->cri_socket, config->vmspec_socket)
                   .c_str());

  // systemd's watchdog (WatchdogSec=): a keep-alive at half the interval.
  std::mutex mu;
  std::condition_variable stop_watchdog;
  bool stopping = false;
  std::thread watchdog;
  uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &watchdog_usec) > 0) {
    kLog.Info("systemd watchdog: keep-alive every {} ms", watchdog_usec / 2000);
    watchdog = std::thread([&] {
      std::unique_lock lock(mu);
      do {
        sd_notify(0, "WATCHDOG=1");
      } while (!stop_watchdog.wait_for(lock, std::chrono::microseconds(watchdog_usec / 2),
                                       [&] { return stopping; }));
    });
  }

  int received = 0;
  sigwait(&signals, &received);
  kLog.Info("received {}, shutting down", received == SIGTERM ? "SIGTERM" : "SIGINT");
  sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
  if (watchdog.joinable()) {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    stop_watchdog.notify_one();
    watchdog.join();
  }
  (*server)->Shutdown();
  kLog.Info("vmletd stopped");
  return 0;
}

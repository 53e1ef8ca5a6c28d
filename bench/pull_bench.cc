// The pull benchmark: how fast vmlet pulls a large VM image from an OCI
// registry, against skopeo copying the same image from the same registry.
// Both are measured in the same run, interleaved, and the figure that
// matters is their ratio.
//
//   meson test -C build --benchmark pull
//   build/bench/pull_bench --size-mib 256 --runs 5   (with VMLETD, ...)
//
// Setup: a local registry (tests/image/registry.sh, docker-registry on
// 127.0.0.1), and big:1 (tests/image/build-test-images.sh --big): one
// uncompressed tar layer holding disk/root.raw of random bytes, so that the
// figures measure transfer, verification and writing, not gzip. The built
// image is kept under $VMLET_BENCH_IMAGE_DIR, so reruns only push it.
// Baseline: `skopeo copy docker://ADDR/vmlet-test/big:1 dir:TMP` (writes
// the blobs, verifies their digests). vmlet: CRI PullImage of the same
// reference against a real vmletd (fake VM driver; the registry configured
// as insecure), with RemoveImage after each pull so that every pull is real.
//
// The target (vmlet at least 0.9 of skopeo's rate) is reported, not
// enforced: the exit code is 0 whenever the harness worked, 1 if it failed,
// 77 (skipped) where docker-registry or skopeo is missing. Until vmletd
// pulls from registries (PullImage answers UNIMPLEMENTED), only the
// baseline is measured and the vmlet half is reported as pending.
// The registry, vmletd and every temporary file are removed, on failure and
// on SIGINT/SIGTERM too.
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/file_util.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::bench {
namespace {

namespace v1 = ::runtime::v1;
using e2e::ExitStatus;
using e2e::RunCommand;
using e2e::VmletdProcess;

constexpr char kImageRef[] = "big:1";  // Pushed as vmlet-test/big:1.
constexpr double kTargetRatio = 0.9;
constexpr absl::Duration kPullTimeout = absl::Minutes(10);

struct Flags {
  int size_mib = 1024;
  int runs = 3;
  std::string vmletd;
  std::string registry_script;
  std::string images_script;
  std::string image_dir;
  std::string skopeo = "/usr/bin/skopeo";
};

// Set by the signal thread once it cleans up; the main thread then leaves
// the exit to it.
std::atomic<bool> g_signalled{false};

// The directories of this run, removed on a signal. Any thread.
std::mutex g_dirs_mu;
std::vector<std::string>& TempDirs() {
  static auto* const kDirs = new std::vector<std::string>;  // Guarded by g_dirs_mu.
  return *kDirs;
}

void RegisterTempDir(const std::string& dir) {
  std::lock_guard lock(g_dirs_mu);
  TempDirs().push_back(dir);
}

// SIGKILLs every child of this process and reaps it; true if there was one.
bool KillAndReapChildren() {
  absl::StatusOr<std::vector<std::string>> entries = ListDirectory("/proc");
  if (!entries.ok()) return false;
  const std::string self = StrCat(::getpid());
  bool found = false;
  for (const std::string& entry : *entries) {
    if (entry.find_first_not_of("0123456789") != std::string::npos) continue;
    absl::StatusOr<std::string> stat = ReadFile(StrCat("/proc/", entry, "/stat"));
    if (!stat.ok()) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    std::istringstream fields(stat->substr(stat->rfind(')') + 1));
    std::string state, ppid;
    fields >> state >> ppid;
    if (ppid != self) continue;
    ::kill(std::atoi(entry.c_str()), SIGKILL);
    found = true;
  }
  // Reap until none is left (ECHILD).
  while (true) {
    if (::waitpid(-1, nullptr, 0) < 0 && errno != EINTR) break;
  }
  return found;
}

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, which every thread
// started later inherits (so call it first in main), and starts a thread
// that waits for them: on one, it kills this process's children (vmletd,
// skopeo, the registry, whose parent we are as a subreaper), waits until
// they are gone, removes the registered directories and exits with 128 +
// the signal.
void StartSignalThread() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals] {
    int signal = 0;
    if (::sigwait(&signals, &signal) != 0) return;
    g_signalled = true;
    std::fprintf(stderr, "pull_bench: signal %d; cleaning up\n", signal);
    // Twice: a child's own children (the registry under registry.sh) become
    // ours when it dies.
    if (KillAndReapChildren()) KillAndReapChildren();
    std::lock_guard lock(g_dirs_mu);
    for (const std::string& dir : TempDirs()) (void)RemoveTree(dir);
    ::_exit(128 + signal);
  }).detach();
}

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// Parses --name=value and --name value; false (with a message) on a bad flag.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (arg != "--help" && i + 1 < argc) {
      value = argv[++i];
    }
    if (arg == "--size-mib" || arg == "--runs") {
      int number = std::atoi(value.c_str());
      if (number < 1) {
        std::fprintf(stderr, "%s: \"%s\" is not a positive number\n", arg.c_str(), value.c_str());
        return false;
      }
      (arg == "--runs" ? flags->runs : flags->size_mib) = number;
    } else if (arg == "--vmletd") {
      flags->vmletd = value;
    } else if (arg == "--registry-script") {
      flags->registry_script = value;
    } else if (arg == "--images-script") {
      flags->images_script = value;
    } else if (arg == "--image-dir") {
      flags->image_dir = value;
    } else if (arg == "--skopeo") {
      flags->skopeo = value;
    } else {
      std::fprintf(stderr,
                   "usage: pull_bench [--size-mib N (1024)] [--runs N (3)] [--vmletd PATH "
                   "($VMLETD)]\n  [--registry-script PATH ($VMLET_REGISTRY_SH)] "
                   "[--images-script PATH ($VMLET_BUILD_TEST_IMAGES)]\n  [--image-dir DIR "
                   "($VMLET_BENCH_IMAGE_DIR)] [--skopeo PATH (%s)]\n",
                   Flags().skopeo.c_str());
      return false;
    }
  }
  return true;
}

// Runs a helper script; its exit code (77: cannot run here), or an error.
absl::StatusOr<int> RunScript(const std::vector<std::string>& args, absl::Duration timeout) {
  std::vector<std::string> argv = {"/bin/sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  VMLET_ASSIGN_OR_RETURN(ExitStatus status, RunCommand(argv, timeout));
  if (status.signal != 0) {
    return absl::InternalError(StrCat("\"", args[0], "\" was killed by signal ", status.signal));
  }
  return status.code;
}

// The total size of the blobs of the OCI layout `layout`: what a pull moves.
absl::StatusOr<int64_t> LayoutBytes(const std::string& layout) {
  const std::string blobs = layout + "/blobs/sha256";
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(blobs));
  int64_t total = 0;
  for (const std::string& name : names) {
    struct stat st;
    const std::string path = StrCat(blobs, "/", name);
    if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, StrCat("stat \"", path, "\""));
    total += st.st_size;
  }
  return total;
}

// A running registry of this run, stopped (and its directory removed) by
// the destructor.
class Registry {
 public:
  explicit Registry(std::string script) : script_(std::move(script)) {}
  ~Registry() {
    if (dir_.empty()) return;
    absl::StatusOr<std::string> pid = ReadFile(dir_ + "/pid");
    (void)RunScript({script_, "stop", dir_}, absl::Seconds(30));
    // As a subreaper we are the registry's parent: reap it.
    if (pid.ok()) ::waitpid(std::atoi(pid->c_str()), nullptr, WNOHANG);
  }

  // Starts the registry in `dir`; its exit code 77 passes through.
  absl::StatusOr<int> Start(const std::string& dir) {
    dir_ = dir;
    VMLET_ASSIGN_OR_RETURN(int code, RunScript({script_, "start", dir}, absl::Seconds(60)));
    if (code != 0) return code;
    VMLET_ASSIGN_OR_RETURN(std::string address, ReadFile(dir + "/address"));
    while (!address.empty() && address.back() == '\n') address.pop_back();
    address_ = address;
    return 0;
  }

  const std::string& address() const { return address_; }

 private:
  std::string script_;
  std::string dir_;
  std::string address_;
};

// One `skopeo copy` of the image into a new directory under `scratch`,
// removed afterwards; the wall time.
absl::StatusOr<absl::Duration> SkopeoPull(const Flags& flags, const std::string& reference,
                                          const std::string& scratch) {
  const std::string target = scratch + "/skopeo";
  VMLET_RETURN_IF_ERROR(RemoveTree(target));
  ScopeGuard remove([&] { (void)RemoveTree(target); });
  const absl::Time start = absl::Now();
  VMLET_ASSIGN_OR_RETURN(
      ExitStatus status,
      RunCommand({flags.skopeo, "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                  StrCat("docker://", reference), StrCat("dir:", target)},
                 kPullTimeout));
  const absl::Duration took = absl::Now() - start;
  if (status.code != 0) {
    return absl::InternalError(StrCat("skopeo copy of \"", reference, "\" failed (exit ",
                                      status.code, ", signal ", status.signal, ")"));
  }
  return took;
}

// One PullImage of `reference` followed by RemoveImage; the wall time of the
// pull. UNIMPLEMENTED passes through as such.
absl::StatusOr<absl::Duration> VmletPull(VmletdProcess& vmletd, const std::string& reference) {
  v1::PullImageRequest request;
  request.mutable_image()->set_image(reference);
  v1::PullImageResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(absl::ToInt64Seconds(kPullTimeout)));
  const absl::Time start = absl::Now();
  grpc::Status pulled = vmletd.image().PullImage(&context, request, &response);
  const absl::Duration took = absl::Now() - start;
  if (!pulled.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(pulled.error_code()),
                        StrCat("PullImage \"", reference, "\": ", pulled.error_message()));
  }
  v1::RemoveImageRequest remove;
  remove.mutable_image()->set_image(reference);
  v1::RemoveImageResponse removed;
  grpc::ClientContext remove_context;
  remove_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  grpc::Status status = vmletd.image().RemoveImage(&remove_context, remove, &removed);
  if (!status.ok()) {
    return absl::InternalError(StrCat("RemoveImage \"", reference, "\" (pulled as \"",
                                      response.image_ref(), "\"): ", status.error_message()));
  }
  return took;
}

void Report(const Flags& flags, int64_t bytes, const std::vector<double>& skopeo,
            const std::vector<double>& vmlet, const std::string& vmlet_pending) {
  const double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);
  fmt::print("\npull benchmark: vmlet-test/{} ({:.1f} MiB in blobs, uncompressed layer),",
             kImageRef, mib);
  fmt::print(" {} run(s) each, interleaved\n\n", flags.runs);
  fmt::print("{:<40}{:>12}{:>14}\n", "", "median", "rate");
  const double skopeo_s = Median(skopeo);
  fmt::print("{:<40}{:>10.2f} s{:>9.1f} MiB/s\n", "skopeo copy docker:// -> dir:", skopeo_s,
             mib / skopeo_s);
  if (!vmlet_pending.empty()) {
    fmt::print("{:<40}{:>12}\n\nvmlet: PENDING ({})\n", "vmlet  PullImage", "-", vmlet_pending);
    return;
  }
  const double vmlet_s = Median(vmlet);
  fmt::print("{:<40}{:>10.2f} s{:>9.1f} MiB/s\n", "vmlet  PullImage", vmlet_s, mib / vmlet_s);
  const double ratio = skopeo_s / vmlet_s;
  fmt::print("\nratio vmlet / skopeo (of the median rates)   {:6.2f}   target >= {:.2f}: {}\n",
             ratio, kTargetRatio, ratio >= kTargetRatio ? "PASS" : "FAIL");
}

absl::StatusOr<int> RunBenchmark(const Flags& flags) {
  std::string scratch = "/tmp/vmlet-pull-bench-XXXXXX";
  if (::mkdtemp(scratch.data()) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  RegisterTempDir(scratch);
  ScopeGuard remove_scratch([&] { (void)RemoveTree(scratch); });

  Registry registry(flags.registry_script);
  VMLET_ASSIGN_OR_RETURN(int started, registry.Start(scratch + "/registry"));
  if (started == 77) {
    std::fprintf(stderr, "no docker-registry here; skipping (exit 77)\n");
    return 77;
  }
  if (started != 0) return absl::InternalError(StrCat("registry.sh start exited ", started));
  std::fprintf(stderr, "registry on %s\n", registry.address().c_str());

  const absl::Time build_start = absl::Now();
  VMLET_ASSIGN_OR_RETURN(
      int built, RunScript({flags.images_script, flags.image_dir, "--big", StrCat(flags.size_mib)},
                           absl::Minutes(20)));
  if (built == 77) return 77;
  if (built != 0) return absl::InternalError(StrCat("building big:1 exited ", built));
  const absl::Time push_start = absl::Now();
  VMLET_ASSIGN_OR_RETURN(int pushed, RunScript({flags.images_script, flags.image_dir, "push",
                                                registry.address(), kImageRef},
                                               absl::Minutes(20)));
  if (pushed == 77) return 77;
  if (pushed != 0) return absl::InternalError(StrCat("pushing big:1 exited ", pushed));
  std::fprintf(stderr, "big:1 built in %.1f s, pushed in %.1f s\n",
               Seconds(push_start - build_start), Seconds(absl::Now() - push_start));
  VMLET_ASSIGN_OR_RETURN(int64_t bytes, LayoutBytes(flags.image_dir + "/big"));
  const std::string reference = StrCat(registry.address(), "/vmlet-test/", kImageRef);

  VmletdProcess vmletd(
      StrCat("registries:\n  \"", registry.address(), "\":\n    insecure: true\n"));
  VMLET_RETURN_IF_ERROR(vmletd.init_status());
  RegisterTempDir(vmletd.dir());
  if (absl::Status up = vmletd.Start(); !up.ok()) return Annotate(up, "starting vmletd");

  std::vector<double> skopeo;
  std::vector<double> vmlet;
  std::string vmlet_pending;
  for (int round = 0; round < flags.runs; ++round) {
    // Alternate which goes first, lest one always run on a warmer machine.
    for (int half = 0; half < 2; ++half) {
      if ((round + half) % 2 == 0) {
        VMLET_ASSIGN_OR_RETURN(absl::Duration took, SkopeoPull(flags, reference, scratch));
        skopeo.push_back(Seconds(took));
        std::fprintf(stderr, "round %d: skopeo %.2f s\n", round, Seconds(took));
      } else if (vmlet_pending.empty()) {
        absl::StatusOr<absl::Duration> took = VmletPull(vmletd, reference);
        if (absl::IsUnimplemented(took.status())) {
          vmlet_pending = StrCat("vmletd answered UNIMPLEMENTED: ", took.status().message());
          continue;
        }
        if (!took.ok()) {
          std::fprintf(stderr, "vmletd's log:\n%s\n", vmletd.Log().c_str());
          return took.status();
        }
        vmlet.push_back(Seconds(*took));
        std::fprintf(stderr, "round %d: vmlet  %.2f s\n", round, Seconds(*took));
      }
    }
  }
  Report(flags, bytes, skopeo, vmlet, vmlet_pending);
  return 0;
}

int Main(int argc, char** argv) {
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  Flags flags{.vmletd = Getenv("VMLETD"),
              .registry_script = Getenv("VMLET_REGISTRY_SH"),
              .images_script = Getenv("VMLET_BUILD_TEST_IMAGES"),
              .image_dir = Getenv("VMLET_BENCH_IMAGE_DIR")};
  if (!ParseFlags(argc, argv, &flags)) return 2;
  if (!flags.vmletd.empty()) ::setenv("VMLETD", flags.vmletd.c_str(), /*overwrite=*/1);
  if (flags.vmletd.empty() || flags.registry_script.empty() || flags.images_script.empty() ||
      flags.image_dir.empty()) {
    std::fprintf(stderr,
                 "no vmletd, scripts or image directory ($VMLETD, $VMLET_REGISTRY_SH, "
                 "$VMLET_BUILD_TEST_IMAGES, $VMLET_BENCH_IMAGE_DIR); skipping (exit 77)\n");
    return 77;
  }
  if (::access(flags.skopeo.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "skopeo is not installed; skipping (exit 77)\n");
    return 77;
  }
  // The registry outlives the script that starts it: as our child (not
  // init's), the signal thread's kill of our children reaches it too.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // Before any other thread exists, so that every thread inherits the mask.
  StartSignalThread();

  // RunBenchmark removes what it made, on failure too.
  absl::StatusOr<int> result = RunBenchmark(flags);
  // Its children gone, the run fails; the signal thread exits the process.
  while (g_signalled) ::pause();
  if (!result.ok()) {
    std::fprintf(stderr, "pull benchmark failed: %s\n", result.status().ToString().c_str());
    return 1;
  }
  return *result;
}

}  // namespace
}  // namespace vmlet::bench

int main(int argc, char** argv) { return vmlet::bench::Main(argc, argv); }

// `vmletctl logs NAME [-f]`: the VM's console log of a pod, from the file
// the kubelet would read (ContainerStatus.log_path), with the CRI prefixes
// stripped. With -f, follows the file as it grows and when it is rotated.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/cri_log.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/pod_lookup.h"

namespace vmlet::ctl {
namespace {

constexpr int kPollIntervalMs = 200;

volatile std::sig_atomic_t interrupted = 0;

void OnInterrupt(int /*signal*/) { interrupted = 1; }

// Makes SIGINT and SIGTERM end the follow loop (interrupting its sleep)
// rather than the process, so that what was read is flushed.
void CatchInterrupts() {
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // No SA_RESTART: the sleep returns at once.
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

// Sleeps for one poll interval or until a signal arrives.
void Pause() { (void)::poll(nullptr, 0, kPollIntervalMs); }

void Write(std::string_view stream, std::string_view text) {
  std::FILE* out = stream == "stderr" ? stderr : stdout;
  std::fwrite(text.data(), 1, text.size(), out);
}

// Feeds everything `fd` holds from its offset on to `decoder`; false after a
// read error (reported).
bool Drain(int fd, const std::string& path, CriLogDecoder& decoder) {
  char buffer[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Fail(StrCat("reading \"", path, "\": ", std::strerror(errno)));
      return false;
    }
    if (n == 0) break;
    decoder.Feed(std::string_view(buffer, static_cast<size_t>(n)));
  }
  std::fflush(stdout);
  std::fflush(stderr);
  return true;
}

// Prints the log at `path`; with `follow`, keeps printing what is appended,
// and the new file when the old one is replaced (the kubelet's rotation) or
// truncated, until SIGINT or SIGTERM.
int PrintLog(const std::string& path, bool follow) {
  if (follow) CatchInterrupts();
  int fd;
  while ((fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC)) < 0) {
    if (errno != ENOENT || !follow) {
      return Fail(StrCat("opening the log file \"", path, "\": ", std::strerror(errno),
                         errno == ENOENT ? " (the VM has written nothing yet)" : ""));
    }
    if (interrupted) return kExitOk;
    Pause();  // Not written yet: wait for it.
  }
  CriLogDecoder decoder(Write);
  int result = kExitOk;
  while (true) {
    if (!Drain(fd, path, decoder)) {
      result = kExitFailure;
      break;
    }
    if (!follow || interrupted) break;
    Pause();
    struct stat current {
    }, now{};
    if (::fstat(fd, &current) != 0 || ::stat(path.c_str(), &now) != 0) continue;  // Mid-rotation.
    if (now.st_ino != current.st_ino || now.st_dev != current.st_dev) {
      // Rotated: the rest of the old file, then the new one from its start.
      if (!Drain(fd, path, decoder)) {
        result = kExitFailure;
        break;
      }
      decoder.Flush();
      int next = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (next < 0) continue;  // Gone again; keep the old one for now.
      ::close(fd);
      fd = next;
    } else if (now.st_size < ::lseek(fd, 0, SEEK_CUR)) {
      ::lseek(fd, 0, SEEK_SET);  // Truncated in place: start over.
    }
  }
  ::close(fd);
  decoder.Flush();
  std::fflush(stdout);
  std::fflush(stderr);
  return result;
}

}  // namespace

int Logs(Client& client, Args args) {
  std::string namespace_ = "default";
  bool follow = false;
  FlagSet flags("logs",
                "usage: vmletctl [options] logs NAME [options]\n"
                "\n"
                "Prints the serial console log of VM pod NAME (its newest VM), from the log\n"
                "file the kubelet reads, without the CRI log prefixes.\n"
                "\n"
                "Options:\n"
                "  --namespace NS   the pod's namespace (default \"default\")\n"
                "  -f, --follow     keep printing what the VM writes, until interrupted\n");
  flags.AddString("--namespace|-n", &namespace_);
  flags.AddBool("-f|--follow", &follow);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  const std::string& name = flags.positional()[0];

  std::optional<v1::Container> vm = FindPodVm(client, name, namespace_);
  if (!vm.has_value()) return kExitFailure;

  v1::ContainerStatusRequest request;
  request.set_container_id(vm->id());
  v1::ContainerStatusResponse response;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::ContainerStatus, request, &response);
  if (!status.ok()) return FailRpc(StrCat("ContainerStatus \"", vm->id(), "\""), status);
  const std::string& path = response.status().log_path();
  if (path.empty()) {
    return Fail(
        StrCat("container \"", vm->id(), "\" of ", DescribePod(name, namespace_),
               " has no log file: the sandbox has no log_directory or the container no log_path"));
  }
  return PrintLog(path, follow);
}

}  // namespace vmlet::ctl

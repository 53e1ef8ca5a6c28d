// The runtime behind the streaming server: exec through the guest agent
// (VmDriver::ExecStreaming), attach to the VM's serial console, and
// port-forward to the pod's address.
//
// Port-forward connects from vmletd's network namespace (the node's) to
// the pod IP, not from inside the sandbox's namespace as container runtimes
// do: there, tc hands every frame of the pod interface to the VM, so the
// namespace's own stack cannot reach the guest. The node reaches every pod
// IP (the Kubernetes network model asks that of CNI plugins).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/cri_service.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

// Console output held for one attached client that reads slower than the
// guest writes; older bytes are dropped beyond it.
constexpr size_t kMaxPendingConsoleBytes = size_t{1} << 20;
// How long an attach goes on after the client's stdin ended, for the
// guest's answer to what was typed.
constexpr absl::Duration kAttachGraceAfterStdin = absl::Seconds(1);
constexpr absl::Duration kConnectTimeout = absl::Seconds(10);

// Moves console output from the driver's thread (which must not block) to
// the client's stream on a thread of its own.
class ConsolePump {
 public:
  explicit ConsolePump(streaming::Stream* out) : out_(out), thread_([this] { Run(); }) {}
  ~ConsolePump() { Stop(); }

  void Push(std::string_view bytes) {
    std::lock_guard lock(mu_);
    pending_.append(bytes);
    if (pending_.size() > kMaxPendingConsoleBytes) {
      pending_.erase(0, pending_.size() - kMaxPendingConsoleBytes);
    }
    cv_.notify_all();
  }

  // True once writing to the client failed (it has gone).
  bool failed() const { return failed_; }

  // Writes what is pending, then ends the thread.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return !pending_.empty() || stopping_; });
      if (pending_.empty()) return;
      std::string chunk = std::move(pending_);
      pending_.clear();
      lock.unlock();
      bool ok = failed_ ? false : out_->Write(chunk).ok();
      lock.lock();
      if (!ok) failed_ = true;
    }
  }

  streaming::Stream* const out_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool stopping_ = false;
  std::atomic<bool> failed_ = false;
  std::thread thread_;
};

absl::StatusOr<int> ConnectTcp(const std::string& ip, int32_t port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(*v4);
  } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(*v6);
  } else {
    return absl::InternalError(StrCat("the pod's address \"", ip, "\" is not an IP address"));
  }
  int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoToStatus(errno, "creating a socket");
  ScopeGuard close_fd([fd] { ::close(fd); });
  std::string where = StrCat(ip, ":", port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    if (errno != EINPROGRESS) return ErrnoToStatus(errno, StrCat("connecting to ", where));
    pollfd wait{.fd = fd, .events = POLLOUT};
    int ready = ::poll(&wait, 1, static_cast<int>(absl::ToInt64Milliseconds(kConnectTimeout)));
    if (ready == 0) {
      return absl::DeadlineExceededError(StrCat("connecting to ", where, ": no answer within ",
                                                absl::FormatDuration(kConnectTimeout)));
    }
    int error = 0;
    socklen_t size = sizeof(error);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (ready < 0 || error != 0) {
      return ErrnoToStatus(ready < 0 ? errno : error, StrCat("connecting to ", where));
    }
  }
  // Blocking from here on: one thread per direction.
  int flags = 0;
  ::ioctl(fd, FIONBIO, &flags);
  close_fd.Dismiss();
  return fd;
}

}  // namespace

class StreamingRuntime final : public streaming::Runtime {
 public:
  explicit StreamingRuntime(CriService* service) : service_(service) {}

  absl::StatusOr<int> Exec(const streaming::ExecRequest& request,
                           streaming::CommandStreams& streams) override {
    vmdriver::ExecStreams io;
    if (streams.has_stdin()) {
      io.read_stdin = [&streams]() -> absl::StatusOr<std::string> { return streams.ReadStdin(); };
      io.cancel_stdin = [&streams] { streams.CancelStdin(); };
    }
    streaming::Stream* out = streams.stdout_stream();
    // With a terminal, stderr goes where stdout goes.
    streaming::Stream* err = streams.tty() ? out : streams.stderr_stream();
    if (out != nullptr) io.write_stdout = [out](std::string_view data) { return out->Write(data); };
    if (err != nullptr) io.write_stderr = [err](std::string_view data) { return err->Write(data); };
    io.client_gone = [&streams] { return streams.WaitForClientGone(absl::ZeroDuration()); };
    kLog.Info("container {}: exec of {} ({} arguments) started", request.container_id,
              request.cmd[0], request.cmd.size() - 1);
    absl::StatusOr<int> exit_code =
        service_->driver_->ExecStreaming(request.container_id, request.cmd, io);
    kLog.Info("container {}: exec of {} ended: {}", request.container_id, request.cmd[0],
              exit_code.ok() ? StrCat("exit code ", *exit_code) : exit_code.status().ToString());
    if (!exit_code.ok()) {
      return Annotate(exit_code.status(),
                      StrCat("exec in container \"", request.container_id, "\""));
    }
    return exit_code;
  }

  absl::Status Attach(const streaming::AttachRequest& request,
                      streaming::CommandStreams& streams) override {
    const std::string& id = request.container_id;
    if (streams.has_stdin()) {
      std::lock_guard lock(mu_);
      if (!typing_.insert(id).second) {
        return absl::FailedPreconditionError(
            StrCat("another session is attached to the console of container \"", id,
                   "\" with stdin; one may type at a time (attach without stdin to watch)"));
      }
    }
    ScopeGuard release([&] {
      if (!streams.has_stdin()) return;
      std::lock_guard lock(mu_);
      typing_.erase(id);
    });
    vmdriver::VmDriver* driver = service_->driver_;
    std::optional<ConsolePump> pump;
    if (streams.stdout_stream() != nullptr) pump.emplace(streams.stdout_stream());
    VMLET_ASSIGN_OR_RETURN(int handle, driver->AttachConsole(id, [&pump](std::string_view bytes) {
      if (pump.has_value()) pump->Push(bytes);
    }));
    kLog.Info("container {}: console attached (stdin: {})", id, streams.has_stdin());
    std::atomic<bool> input_done = !streams.has_stdin();
    std::thread input;
    if (streams.has_stdin()) {
      input = std::thread([&] {
        while (true) {
          std::string data = streams.ReadStdin();
          if (data.empty() || !driver->WriteConsole(id, data).ok()) break;
        }
        input_done = true;
      });
    }
    std::string why;
    while (why.empty()) {
      if (streams.WaitForClientGone(absl::Milliseconds(250))) {
        why = "the client left";
      } else if (pump.has_value() && pump->failed()) {
        why = "the client stopped reading";
      } else if (streams.has_stdin() && input_done) {
        streams.WaitForClientGone(kAttachGraceAfterStdin);
        why = "stdin ended";
      } else if (absl::StatusOr<vmdriver::VmInfo> info = driver->Inspect(id);
                 !info.ok() || info->state != vmdriver::VmState::kRunning) {
        why = "the VM stopped";
      }
    }
    streams.CancelStdin();
    if (input.joinable()) input.join();
    driver->DetachConsole(id, handle);
    if (pump.has_value()) pump->Stop();
    kLog.Info("container {}: console detached: {}", id, why);
    return absl::OkStatus();
  }

  absl::Status PortForward(const std::string& sandbox_id, int32_t port,
                           streaming::Stream& data) override {
    VMLET_ASSIGN_OR_RETURN(SandboxRecord sandbox, service_->sandboxes_.Get(sandbox_id));
    if (sandbox.network().ips().empty()) {
      return absl::FailedPreconditionError(
          StrCat("pod sandbox \"", sandbox_id, "\" has no IP address to forward to"));
    }
    VMLET_ASSIGN_OR_RETURN(int fd, ConnectTcp(sandbox.network().ips(0), port));
    ScopeGuard close_fd([fd] { ::close(fd); });
    // Client to guest on a thread; guest to client here.
    std::thread upstream([fd, &data] {
      while (true) {
        absl::StatusOr<std::string> chunk = data.Read();
        if (!chunk.ok()) {
          ::shutdown(fd, SHUT_RDWR);
          return;
        }
        if (chunk->empty()) {
          ::shutdown(fd, SHUT_WR);
          return;
        }
        std::string_view rest = *chunk;
        while (!rest.empty()) {
          ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            ::shutdown(fd, SHUT_RDWR);
            return;
          }
          rest.remove_prefix(static_cast<size_t>(n));
        }
      }
    });
    absl::Status result = absl::OkStatus();
    char buffer[32 * 1024];
    while (true) {
      ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != ECONNRESET) {
        result = ErrnoToStatus(errno, StrCat("reading from port ", port));
      }
      if (n <= 0) break;
      if (!data.Write(std::string_view(buffer, static_cast<size_t>(n))).ok()) {
        data.Reset();
        break;
      }
    }
    (void)data.CloseWrite();
    upstream.join();
    return result;
  }

 private:
  CriService* const service_;
  std::mutex mu_;
  std::set<std::string> typing_;  // Containers with an attach that holds stdin.
};

std::unique_ptr<streaming::Runtime> NewStreamingRuntime(CriService* service) {
  return std::make_unique<StreamingRuntime>(service);
}

}  // namespace vmlet::cri

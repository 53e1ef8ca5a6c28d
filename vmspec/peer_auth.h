// Who may change things through the VM-spec socket, and the server that
// enforces it.
//
// The socket has mode 0660 and the group `vmspec_group` (config key; empty:
// root's group). Callers are told apart by their peer credentials: uid 0 and
// processes whose groups include that group may do everything; any other
// process that can connect (one with CAP_DAC_OVERRIDE, say) may only read:
// VmSpecs Apply and Delete, Images PullImage and ImportImage and Console
// Attach answer PERMISSION_DENIED naming its uid and the group.
//
// How: gRPC C++ does not tell a handler who is at the other end of a unix
// socket. So PeerAuthServer listens on the socket itself, reads each
// connection's credentials once, at accept (SO_PEERCRED, SO_PEERGROUPS), and
// hands the connection (grpc::AddInsecureChannelFromFd) to one of two
// grpc::Server instances: the full one, or a read-only one whose services
// refuse every change. The decision is which server a connection reaches;
// nothing a handler reads later can widen it. The read-only server's
// handlers look the caller's uid up by the connection's descriptor (gRPC's
// peer "fd:N"), only to name it in the message.
//
//   accept ──► SO_PEERCRED ──► uid 0 or member? ──yes──► full server
//                                    │
//                                    no ──► read-only server (PERMISSION_DENIED
//                                                              for changes)
#ifndef VMLET_VMSPEC_PEER_AUTH_H_
#define VMLET_VMSPEC_PEER_AUTH_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vmlet/vmspec/v1/console.grpc.pb.h"
#include "vmlet/vmspec/v1/images.grpc.pb.h"

namespace vmlet::vmspec {

namespace v1 = ::vmlet::vmspec::v1;

// The group whose members may change things.
struct AccessGroup {
  gid_t gid = 0;
  std::string name = "root";
};

// The group named by vmspec_group ("" is root's group). INVALID_ARGUMENT
// naming the key for a group the system does not know.
absl::StatusOr<AccessGroup> ResolveAccessGroup(std::string_view name);

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // Supplementary groups.
};

// The credentials of the process at the other end of the unix socket `fd`
// (as they were when it connected).
absl::StatusOr<PeerCredentials> ReadPeerCredentials(int fd);

// The access rule and what the read-only server needs to explain a refusal.
// Threading: every method may be called from any thread.
class PeerAccess {
 public:
  explicit PeerAccess(AccessGroup group) : group_(std::move(group)) {}

  const AccessGroup& group() const { return group_; }

  // uid 0, or `group` among the process's groups.
  bool MayChange(const PeerCredentials& peer) const;

  // Remembers the uid of a connection handed to the read-only server.
  // Bounded: one entry per descriptor number.
  void RecordReadOnly(int fd, uid_t uid);

  // PERMISSION_DENIED for `method` called on the read-only server, naming
  // the caller's uid and the group.
  absl::Status Denied(std::string_view method, const grpc::ServerContext* context) const;

 private:
  const AccessGroup group_;
  mutable std::mutex mu_;
  std::map<int, uid_t> read_only_uids_;  // By descriptor; guarded by mu_.
};

// The Images and Console services of the read-only server: every call
// answers PERMISSION_DENIED. `access` must outlive them.
class DeniedImagesService final : public v1::Images::Service {
 public:
  explicit DeniedImagesService(const PeerAccess* access) : access_(access) {}
  grpc::Status PullImage(grpc::ServerContext* context, const v1::PullImageRequest* request,
                         grpc::ServerWriter<v1::PullImageProgress>* writer) override;
  grpc::Status ImportImage(grpc::ServerContext* context, const v1::ImportImageRequest* request,
                           v1::ImportImageResponse* response) override;

 private:
  const PeerAccess* const access_;
};

class DeniedConsoleService final : public v1::Console::Service {
 public:
  explicit DeniedConsoleService(const PeerAccess* access) : access_(access) {}
  grpc::Status Attach(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ConsoleOutput, v1::ConsoleInput>* stream) override;

 private:
  const PeerAccess* const access_;
};

struct PeerAuthServerOptions {
  // Where to listen; the path must not exist (server.h PrepareSocketPath).
  std::string socket_path;
  // Must outlive the server.
  PeerAccess* access = nullptr;
  // Served to callers that may change things, and to the others. The
  // services must outlive the server.
  std::vector<grpc::Service*> services;
  std::vector<grpc::Service*> read_only_services;
  int max_message_bytes = 16 << 20;
};

class PeerAuthServer {
 public:
  // Creates the socket (mode 0660, group access->group()) and starts both
  // servers and the accepting thread.
  static absl::StatusOr<std::unique_ptr<PeerAuthServer>> Start(PeerAuthServerOptions options);
  // Shutdown() with no time for calls in flight, unless called before.
  ~PeerAuthServer();

  // Stops accepting, lets calls in flight on both servers run until
  // `deadline` (then cancels them), waits for them and removes the socket.
  // Idempotent; from one thread (vmletd's main thread).
  void Shutdown(std::chrono::system_clock::time_point deadline);

 private:
  PeerAuthServer(PeerAuthServerOptions options, int listen_fd, int stop_fd)
      : options_(std::move(options)), listen_fd_(listen_fd), stop_fd_(stop_fd) {}

  void Run();

  const PeerAuthServerOptions options_;
  const int listen_fd_;
  const int stop_fd_;  // eventfd that wakes the accepting thread.
  std::unique_ptr<grpc::Server> full_;
  std::unique_ptr<grpc::Server> read_only_;
  std::thread thread_;
  bool shut_down_ = false;
};

}  // namespace vmlet::vmspec

#endif  // VMLET_VMSPEC_PEER_AUTH_H_

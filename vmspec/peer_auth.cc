#include "vmspec/peer_auth.h"

#include <fcntl.h>
#include <grp.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "base/file_util.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/instrumented_service.h"

namespace vmlet::vmspec {
namespace {

constexpr Logger kLog("vmspec");

// The descriptor of gRPC's peer "fd:N" (the name AddInsecureChannelFromFd
// gives a connection), or -1.
int PeerFd(const grpc::ServerContext* context) {
  if (context == nullptr) return -1;
  const std::string peer = context->peer();
  if (!peer.starts_with("fd:")) return -1;
  int fd = -1;
  auto [end, error] = std::from_chars(peer.data() + 3, peer.data() + peer.size(), fd);
  return error == std::errc() && end == peer.data() + peer.size() ? fd : -1;
}

}  // namespace

absl::StatusOr<AccessGroup> ResolveAccessGroup(std::string_view name) {
  if (name.empty()) return AccessGroup{};
  const std::string group_name(name);
  std::vector<char> buffer(16384);
  group entry;
  group* found = nullptr;
  int error = 0;
  while ((error = ::getgrnam_r(group_name.c_str(), &entry, buffer.data(), buffer.size(), &found)) ==
             ERANGE &&
         buffer.size() < (1 << 20)) {
    buffer.resize(buffer.size() * 2);
  }
  if (error != 0 && error != ENOENT) {
    return ErrnoToStatus(error, StrCat("vmspec_group \"", name, "\": looking the group up"));
  }
  if (found == nullptr) {
    return absl::InvalidArgumentError(
        StrCat("vmspec_group \"", name,
               "\" is not a group of this system: expected a group of /etc/group, or none"));
  }
  return AccessGroup{.gid = found->gr_gid, .name = group_name};
}

absl::StatusOr<PeerCredentials> ReadPeerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ErrnoToStatus(errno, "reading the caller's credentials (SO_PEERCRED)");
  }
  PeerCredentials peer{.pid = cred.pid, .uid = cred.uid, .gid = cred.gid, .groups = {}};
  std::vector<gid_t> groups(64);
  while (true) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      break;
    }
    // ERANGE says how much room the list needs (at most NGROUPS_MAX).
    if (errno != ERANGE || bytes <= groups.size() * sizeof(gid_t) || bytes > (1 << 20)) {
      return ErrnoToStatus(errno, "reading the caller's groups (SO_PEERGROUPS)");
    }
    groups.resize(bytes / sizeof(gid_t));
  }
  peer.groups = std::move(groups);
  return peer;
}

bool PeerAccess::MayChange(const PeerCredentials& peer) const {
  return peer.uid == 0 || peer.gid == group_.gid ||
         std::find(peer.groups.begin(), peer.groups.end(), group_.gid) != peer.groups.end();
}

void PeerAccess::RecordReadOnly(int fd, uid_t uid) {
  std::lock_guard lock(mu_);
  read_only_uids_[fd] = uid;
}

absl::Status PeerAccess::Denied(std::string_view method, const grpc::ServerContext* context) const {
  std::string caller = "the caller";
  const int fd = PeerFd(context);
  {
    std::lock_guard lock(mu_);
    if (auto it = read_only_uids_.find(fd); it != read_only_uids_.end()) {
      caller = StrCat("uid ", it->second);
    }
  }
  kLog.Warning("refused {} to {} (not root, not in group {})", method, caller, group_.name);
  return absl::PermissionDeniedError(StrCat(
      method, " refused to ", caller, ": changes through the VM-spec socket need uid 0 or group \"",
      group_.name, "\" (gid ", group_.gid, ", config key vmspec_group)"));
}

grpc::Status DeniedImagesService::PullImage(grpc::ServerContext* context,
                                            const v1::PullImageRequest* /*request*/,
                                            grpc::ServerWriter<v1::PullImageProgress>* /*writer*/) {
  return cri::ToGrpcStatus(access_->Denied("PullImage", context));
}

grpc::Status DeniedImagesService::ImportImage(grpc::ServerContext* context,
                                              const v1::ImportImageRequest* /*request*/,
                                              v1::ImportImageResponse* /*response*/) {
  return cri::ToGrpcStatus(access_->Denied("ImportImage", context));
}

grpc::Status DeniedConsoleService::Attach(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ConsoleOutput, v1::ConsoleInput>* /*stream*/) {
  return cri::ToGrpcStatus(access_->Denied("console Attach", context));
}

absl::StatusOr<std::unique_ptr<PeerAuthServer>> PeerAuthServer::Start(
    PeerAuthServerOptions options) {
  const std::string& path = options.socket_path;
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(StrCat("socket path \"", path,
                                             "\" is invalid: expected a path of 1 to ",
                                             sizeof(addr.sun_path) - 1, " bytes"));
  }
  const int listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd < 0) return ErrnoToStatus(errno, "creating the VM-spec socket");
  ScopeGuard close_listen([listen_fd] { ::close(listen_fd); });
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::bind(listen_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoToStatus(errno, StrCat("binding \"", path, "\""));
  }
  ScopeGuard remove_socket([&path] { ::unlink(path.c_str()); });
  // Owner and mode before listen(): nobody can connect earlier.
  const gid_t gid = options.access->group().gid;
  if (::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0) {
    return ErrnoToStatus(errno, StrCat("giving \"", path, "\" the group \"",
                                       options.access->group().name, "\" (vmspec_group)"));
  }
  if (::chmod(path.c_str(), 0660) != 0) return ErrnoToStatus(errno, StrCat("chmod \"", path, "\""));
  if (::listen(listen_fd, SOMAXCONN) != 0) {
    return ErrnoToStatus(errno, StrCat("listening on \"", path, "\""));
  }
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) return ErrnoToStatus(errno, "eventfd");
  std::unique_ptr<PeerAuthServer> server(
      new PeerAuthServer(std::move(options), listen_fd, stop_fd));
  close_listen.Dismiss();
  remove_socket.Dismiss();

  for (bool full : {true, false}) {
    grpc::ServerBuilder builder;
    for (grpc::Service* service :
         full ? server->options_.services : server->options_.read_only_services) {
      builder.RegisterService(service);
    }
    builder.SetMaxReceiveMessageSize(server->options_.max_message_bytes);
    builder.SetMaxSendMessageSize(server->options_.max_message_bytes);
    std::unique_ptr<grpc::Server> built = builder.BuildAndStart();
    if (built == nullptr) {
      server->Shutdown(std::chrono::system_clock::now());
      return absl::UnavailableError(
          StrCat("cannot start the gRPC server of \"", path, "\" (see the gRPC log above)"));
    }
    (full ? server->full_ : server->read_only_) = std::move(built);
  }
  server->thread_ = std::thread([s = server.get()] { s->Run(); });
  return server;
}

PeerAuthServer::~PeerAuthServer() { Shutdown(std::chrono::system_clock::now()); }

void PeerAuthServer::Run() {
  pollfd fds[2] = {{.fd = listen_fd_, .events = POLLIN, .revents = 0},
                   {.fd = stop_fd_, .events = POLLIN, .revents = 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      kLog.Error("VM-spec socket: poll: {}", ErrnoToStatus(errno, "poll").message());
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: wait a little rather than spin on the backlog.
        kLog.Warning("VM-spec socket: accept: {}", ErrnoToStatus(errno, "accept").message());
        ::poll(nullptr, 0, 100);
      } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        kLog.Warning("VM-spec socket: accept: {}", ErrnoToStatus(errno, "accept").message());
      }
      continue;
    }
    absl::StatusOr<PeerCredentials> peer = ReadPeerCredentials(fd);
    if (!peer.ok()) {
      kLog.Warning("VM-spec socket: dropping a connection: {}", peer.status().message());
      ::close(fd);
      continue;
    }
    // gRPC owns the descriptor from here on.
    if (options_.access->MayChange(*peer)) {
      kLog.Debug("VM-spec socket: connection from pid {} uid {}", peer->pid, peer->uid);
      grpc::AddInsecureChannelFromFd(full_.get(), fd);
    } else {
      kLog.Debug("VM-spec socket: read-only connection from pid {} uid {}", peer->pid, peer->uid);
      options_.access->RecordReadOnly(fd, peer->uid);
      grpc::AddInsecureChannelFromFd(read_only_.get(), fd);
    }
  }
}

void PeerAuthServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  // Both get the same deadline, so the whole wait is bounded by it.
  if (full_ != nullptr) full_->Shutdown(deadline);
  if (read_only_ != nullptr) read_only_->Shutdown(deadline);
  if (full_ != nullptr) full_->Wait();
  if (read_only_ != nullptr) read_only_->Wait();
  ::close(listen_fd_);
  ::close(stop_fd_);
  (void)RemoveFileIfExists(options_.socket_path);
}

}  // namespace vmlet::vmspec

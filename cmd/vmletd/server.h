// vmletd's wiring: the VM driver, the VM-spec store (and vmspec_dir), the
// CRI service and the gRPC servers on the CRI and VM-spec sockets (the latter
// with its access control, vmspec/peer_auth.h), and a clean shutdown.
#ifndef VMLET_CMD_VMLETD_SERVER_H_
#define VMLET_CMD_VMLETD_SERVER_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/metrics.h"
#include "cmd/vmletd/config.h"
#include "cmd/vmletd/metrics_server.h"
#include "cmd/vmletd/socket_activation.h"
#include "cri/cri_service.h"
#include "cri/instrumented_service.h"
#include "streaming/server.h"
#include "vmdriver/vm_driver.h"
#include "vmspec/console_service.h"
#include "vmspec/images_service.h"
#include "vmspec/peer_auth.h"
#include "vmspec/spec_dir.h"
#include "vmspec/spec_store.h"
#include "vmspec/vmspecs_service.h"

namespace vmlet {

// Prepares the socket path: creates the parent directory and removes a
// stale socket. FAILED_PRECONDITION if another process serves on it or the
// path is not a socket.
absl::Status PrepareSocketPath(const std::string& path);

class Server {
 public:
  // Builds every part and starts serving; the CRI socket has mode 0660 (or
  // is the one systemd passed, see socket_activation.h), the VM-spec socket
  // mode 0660 and the group vmspec_group.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config);
  ~Server();

  // Stops accepting calls, lets in-flight calls finish for up to the
  // configured timeout, then removes the socket. Called once, from the
  // main thread.
  void Shutdown();

 private:
  explicit Server(const Config& config) : config_(config) {}

  // Registers what vmletd serves at metrics_address: the adapters' call
  // figures and a collector of VMs by state, statistics and events.
  absl::Status RegisterMetrics();

  Config config_;
  // Declared first: the metrics server, which reads it, stops before the
  // parts it reports on go away.
  MetricsRegistry metrics_;
  cri::RpcMetrics rpc_metrics_;
  std::unique_ptr<vmdriver::VmDriver> driver_;
  // Before the CRI service, which reads specs through it.
  std::unique_ptr<vmspec::SpecStore> vmspec_store_;
  std::unique_ptr<vmspec::SpecDirWatcher> vmspec_dir_watcher_;  // Null without vmspec_dir.
  std::unique_ptr<network::PodNetwork> network_;
  std::unique_ptr<cri::CriService> cri_;
  std::unique_ptr<cri::RuntimeServiceAdapter> runtime_service_;
  std::unique_ptr<cri::ImageServiceAdapter> image_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  bool socket_activated_ = false;  // The CRI socket came from systemd.
  std::unique_ptr<ActivatedListener> activated_listener_;
  std::unique_ptr<streaming::Server> streaming_server_;
  std::unique_ptr<vmspec::ImagesService> images_service_;
  std::unique_ptr<vmspec::ConsoleService> console_service_;
  std::unique_ptr<vmspec::VmSpecsService> vmspecs_service_;
  // What callers outside vmspec_group get: the same reads, no changes.
  std::unique_ptr<vmspec::PeerAccess> vmspec_access_;
  std::unique_ptr<vmspec::DeniedImagesService> denied_images_service_;
  std::unique_ptr<vmspec::DeniedConsoleService> denied_console_service_;
  std::unique_ptr<vmspec::VmSpecsService> read_only_vmspecs_service_;
  std::unique_ptr<vmspec::PeerAuthServer> vmspec_server_;  // The VM-spec socket.
  std::unique_ptr<MetricsServer> metrics_server_;
  bool shut_down_ = false;
};

}  // namespace vmlet

#endif  // VMLET_CMD_VMLETD_SERVER_H_

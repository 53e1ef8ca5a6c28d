#include "cmd/vmletd/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/file_util.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "vmdriver/fake_vm_driver.h"
#include "vmdriver/libvirt/libvirt_driver.h"

namespace vmlet {
namespace {

constexpr Logger kLog("vmletd");

// Whether a process accepts connections on the unix socket at `path`.
bool SomeoneListens(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ScopeGuard close_fd([fd] { ::close(fd); });
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

absl::StatusOr<std::unique_ptr<vmdriver::VmDriver>> MakeDriver(const Config& config) {
  if (config.vm_driver == "fake") {
    kLog.Warning("using the fake VM driver: no VM is booted (vm_driver: fake is for tests)");
    auto driver = std::make_unique<vmdriver::FakeVmDriver>(config.state_dir + "/fake-vms");
    VMLET_RETURN_IF_ERROR(Annotate(driver->Load(), "loading the fake VM driver's VMs"));
    return driver;
  }
  VMLET_ASSIGN_OR_RETURN(std::unique_ptr<vmdriver::libvirt::LibvirtDriver> driver,
                         vmdriver::libvirt::LibvirtDriver::Start({
                             .uri = config.libvirt_uri,
                             .accelerator = std::string(AcceleratorName(config.accelerator)),
                             .vm_dir = config.state_dir + "/vms",
                             .console_dir = config.run_dir + "/consoles",
                         }));
  return driver;
}

// systemd runs the host when /run/systemd/system exists (sd_booted()).
absl::StatusOr<std::string> ResolveCgroupDriver(const std::string& configured) {
  struct stat st;
  const bool systemd = ::stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
  if (configured == "auto") return std::string(systemd ? "systemd" : "cgroupfs");
  if (configured == "systemd" && !systemd) {
    return absl::FailedPreconditionError(
        "cgroup_driver: \"systemd\", but systemd does not run this host (no "
        "/run/systemd/system): expected cgroupfs or auto");
  }
  return configured;
}

}  // namespace

absl::Status PrepareSocketPath(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(StrCat("socket path \"", path, "\" is longer than ",
                                             sizeof(sockaddr_un{}.sun_path) - 1, " bytes"));
  }
  VMLET_RETURN_IF_ERROR(MakeDirs(DirName(path), 0755));
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(errno, StrCat("checking \"", path, "\""));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat("\"", path, "\" exists and is not a socket; remove it or choose another path"));
  }
  if (SomeoneListens(path)) {
    return absl::FailedPreconditionError(
        StrCat("another process serves on \"", path, "\" (is vmletd already running?)"));
  }
  kLog.Info("removing stale socket {}", path);
  return RemoveFileIfExists(path);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config) {
  VMLET_ASSIGN_OR_RETURN(std::string cgroup_driver, ResolveCgroupDriver(config.cgroup_driver));
  VMLET_ASSIGN_OR_RETURN(vmspec::AccessGroup vmspec_group,
                         vmspec::ResolveAccessGroup(config.vmspec_group));
  std::unique_ptr<Server> server(new Server(config));
  VMLET_ASSIGN_OR_RETURN(server->driver_, MakeDriver(config));
  VMLET_ASSIGN_OR_RETURN(server->vmspec_store_,
                         vmspec::SpecStore::Open({.dir = config.state_dir + "/vmspecs"}));
  if (!config.vmspec_dir.empty()) {
    VMLET_ASSIGN_OR_RETURN(
        server->vmspec_dir_watcher_,
        vmspec::SpecDirWatcher::Start({.dir = config.vmspec_dir}, server->vmspec_store_.get()));
  }
  vmspec::SpecStore* const vmspec_store = server->vmspec_store_.get();
  const std::string netns_dir = StrCat(config.run_dir, "/netns");
  VMLET_RETURN_IF_ERROR(MakeDirs(netns_dir, 0711));
  server->network_ = std::make_unique<network::PodNetwork>(network::PodNetworkOptions{
      .mode = config.pod_network,
      .netns_dir = netns_dir,
      .cni_conf_dir = config.cni_conf_dir,
      .cni_bin_dirs = config.cni_bin_dirs,
      .cni_timeout = absl::Seconds(config.cni_plugin_timeout_seconds),
  });
  if (absl::Status ready = server->network_->Ready(); !ready.ok()) {
    kLog.Warning("pod network not ready (pods cannot start until it is): {}", ready.message());
  }
  server->cri_ = std::make_unique<cri::CriService>(
      cri::CriOptions{.state_dir = config.state_dir,
                      .run_dir = config.run_dir,
                      .default_vcpus = config.default_vcpus,
                      .default_memory_bytes = int64_t{config.default_memory_mib} * vmdriver::kMiB,
                      .max_vcpus = config.max_vcpus,
                      .max_memory_bytes = int64_t{config.max_memory_mib} * vmdriver::kMiB,
                      .stats_interval = absl::Seconds(config.stats_interval_seconds),
                      .cgroup_driver = cgroup_driver,
                      .local_images = config.local_images,
                      .registries = config.registries,
                      .image_translations = config.image_translations,
                      .find_vmspec =
                          [vmspec_store](std::string_view ns, std::string_view name) {
                            return vmspec_store->Get(ns, name);
                          }},
      server->driver_.get(), server->network_.get());
  VMLET_RETURN_IF_ERROR(Annotate(server->cri_->Init(), "loading state"));
  VMLET_RETURN_IF_ERROR(MakeDirs(config.run_dir, 0755));
  VMLET_ASSIGN_OR_RETURN(
      server->streaming_server_,
      streaming::Server::Start({.http = {.address = config.streaming_address,
                                         .port = config.streaming_port,
                                         .tls_cert_file = config.streaming_tls_cert_file,
                                         .tls_key_file = config.streaming_tls_key_file}},
                               server->cri_->streaming_runtime()));
  server->cri_->SetStreamingServer(server->streaming_server_.get());
  kLog.Info("streaming server (exec, attach, port-forward) on {}",
            server->streaming_server_->base_url());
  // Under systemd's vmletd.socket the CRI socket exists already and is
  // systemd's; vmletd then neither creates nor removes it.
  const int activated = ActivatedSocket(config.cri_socket);
  server->socket_activated_ = activated >= 0;
  if (!server->socket_activated_) VMLET_RETURN_IF_ERROR(PrepareSocketPath(config.cri_socket));

  VMLET_RETURN_IF_ERROR(server->RegisterMetrics());
  server->runtime_service_ =
      std::make_unique<cri::RuntimeServiceAdapter>(server->cri_.get(), &server->rpc_metrics_);
  server->image_service_ =
      std::make_unique<cri::ImageServiceAdapter>(server->cri_.get(), &server->rpc_metrics_);
  grpc::ServerBuilder builder;
  if (!server->socket_activated_) {
    builder.AddListeningPort(StrCat("unix:", config.cri_socket), grpc::InsecureServerCredentials());
  }
  builder.RegisterService(server->runtime_service_.get());
  builder.RegisterService(server->image_service_.get());
  // Pod and container configs can be large (many env vars and mounts).
  builder.SetMaxReceiveMessageSize(16 << 20);
  builder.SetMaxSendMessageSize(16 << 20);
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr) {
    return absl::UnavailableError(
        StrCat("cannot serve on \"", config.cri_socket, "\" (see the gRPC log above)"));
  }
  if (server->socket_activated_) {
    server->activated_listener_ =
        std::make_unique<ActivatedListener>(activated, server->grpc_server_.get());
  } else if (::chmod(config.cri_socket.c_str(), 0660) != 0) {
    absl::Status status = ErrnoToStatus(errno, StrCat("chmod \"", config.cri_socket, "\""));
    server->Shutdown();
    return status;
  }
  kLog.Info("serving the CRI on {}{} (VM driver: {})", config.cri_socket,
            server->socket_activated_ ? " (socket from systemd)" : "", server->driver_->Name());

  // vmlet's own API on its own socket: everything for root and members of
  // vmspec_group, reads only for the others (vmspec/peer_auth.h).
  if (absl::Status prepared = PrepareSocketPath(config.vmspec_socket); !prepared.ok()) {
    server->Shutdown();
    return prepared;
  }
  server->images_service_ = std::make_unique<vmspec::ImagesService>(server->cri_->images());
  server->console_service_ =
      std::make_unique<vmspec::ConsoleService>(server->cri_.get(), server->driver_.get());
  server->vmspecs_service_ =
      std::make_unique<vmspec::VmSpecsService>(vmspec_store, server->cri_.get());
  server->vmspec_access_ = std::make_unique<vmspec::PeerAccess>(vmspec_group);
  const vmspec::PeerAccess* access = server->vmspec_access_.get();
  server->denied_images_service_ = std::make_unique<vmspec::DeniedImagesService>(access);
  server->denied_console_service_ = std::make_unique<vmspec::DeniedConsoleService>(access);
  server->read_only_vmspecs_service_ =
      std::make_unique<vmspec::VmSpecsService>(vmspec_store, server->cri_.get(), access);
  absl::StatusOr<std::unique_ptr<vmspec::PeerAuthServer>> vmspec_server =
      vmspec::PeerAuthServer::Start({
          .socket_path = config.vmspec_socket,
          .access = server->vmspec_access_.get(),
          .services = {server->images_service_.get(), server->console_service_.get(),
                       server->vmspecs_service_.get()},
          .read_only_services = {server->denied_images_service_.get(),
                                 server->denied_console_service_.get(),
                                 server->read_only_vmspecs_service_.get()},
      });
  if (!vmspec_server.ok()) {
    server->Shutdown();
    return Annotate(vmspec_server.status(), "vmspec_socket");
  }
  server->vmspec_server_ = *std::move(vmspec_server);
  kLog.Info("serving the VM-spec API on {} (changes: root and group {})", config.vmspec_socket,
            vmspec_group.name);
  if (!config.metrics_address.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(config.metrics_address, &server->metrics_);
    if (!metrics.ok()) {
      server->Shutdown();
      return Annotate(metrics.status(), "metrics_address");
    }
    server->metrics_server_ = *std::move(metrics);
    kLog.Info("serving Prometheus metrics on http://{}/metrics", config.metrics_address);
  }
  return server;
}

absl::Status Server::RegisterMetrics() {
  VMLET_ASSIGN_OR_RETURN(rpc_metrics_, cri::RpcMetrics::Register(metrics_));
  cri::CriService* cri = cri_.get();
  vmspec::SpecStore* store = vmspec_store_.get();
  metrics_.AddCollector([cri, store](MetricSink& sink) {
    MetricSink::Family& vms = sink.AddGauge("vmlet_vms", "Containers (VMs) by state.", {"state"});
    for (const auto& [state, count] : cri->ContainersByState()) vms.Add({state}, count);
    sink.AddCounter("vmlet_image_pull_bytes_total",
                    "Bytes downloaded by successful pulls since vmletd started.")
        .Add({}, static_cast<double>(cri->images()->pulled_bytes()));
    sink.AddCounter("vmlet_stats_collections_total",
                    "Bulk readings of VM statistics (one libvirt query each).")
        .Add({}, static_cast<double>(cri->stats()->collections()));
    sink.AddCounter("vmlet_stats_collection_errors_total", "Bulk readings that failed.")
        .Add({}, static_cast<double>(cri->stats()->errors()));
    sink.AddGauge("vmlet_vmspecs", "VM specs stored (from the API and from vmspec_dir).")
        .Add({}, static_cast<double>(store->size()));
    sink.AddGauge("vmlet_container_event_subscribers", "Open GetContainerEvents streams.")
        .Add({}, static_cast<double>(cri->container_events()->subscribers()));
    sink.AddCounter("vmlet_container_events_total", "Container events published.")
        .Add({}, static_cast<double>(cri->container_events()->published()));
  });
  return absl::OkStatus();
}

Server::~Server() {
  Shutdown();
  // The driver goes first: once it is gone no VM event can reach the CRI
  // service that is destroyed next.
  driver_.reset();
  cri_.reset();
  network_.reset();
}

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // A pull in flight would hold the shutdown for as long as its download.
  if (cri_ != nullptr && cri_->images() != nullptr) cri_->images()->CancelAll();
  if (activated_listener_ != nullptr) activated_listener_->Stop();  // No new connections.
  // Event streams last until their subscriber leaves: end them, so that
  // the wait for calls in flight below does not wait for them.
  if (cri_ != nullptr) cri_->Shutdown();
  if (grpc_server_ != nullptr) {
    kLog.Info("shutting down: waiting up to {}s for calls in flight",
              config_.shutdown_timeout_seconds);
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           std::chrono::seconds(config_.shutdown_timeout_seconds));
    grpc_server_->Wait();
    if (!socket_activated_) (void)RemoveFileIfExists(config_.cri_socket);
  }
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  // Sessions that outlived the CRI calls that opened them end here.
  if (streaming_server_ != nullptr) streaming_server_->Stop();
  if (vmspec_server_ != nullptr) {
    vmspec_server_->Shutdown(std::chrono::system_clock::now() +
                             std::chrono::seconds(config_.shutdown_timeout_seconds));
  }
  if (vmspec_dir_watcher_ != nullptr) vmspec_dir_watcher_->Stop();
}

}  // namespace vmlet

// One libvirt connection, kept open: libvirt's event loop runs on a thread of
// its own (one per process, started with the first connection), keepalive detects a dead libvirtd,
// and a reconnect thread opens the connection again (re-registering the lifecycle events) whenever
// it drops.
#ifndef VMLET_VMDRIVER_LIBVIRT_LIBVIRT_CONNECTION_H_
#define VMLET_VMDRIVER_LIBVIRT_LIBVIRT_CONNECTION_H_

#include <libvirt/libvirt.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace vmlet::vmdriver::libvirt {

// A counted reference to a connection; released when destroyed.
class ConnRef {
 public:
  explicit ConnRef(virConnectPtr conn) : conn_(conn) {}
  ConnRef(ConnRef&& other) noexcept : conn_(other.conn_) { other.conn_ = nullptr; }
  ConnRef& operator=(ConnRef&&) = delete;
  ConnRef(const ConnRef&) = delete;
  ~ConnRef() {
    if (conn_ != nullptr) virConnectClose(conn_);
  }
  virConnectPtr get() const { return conn_; }

 private:
  virConnectPtr conn_;
};

class LibvirtConnection {
 public:
  // Called on the event loop thread for every lifecycle event of any domain.
  using LifecycleHandler = std::function<void(virDomainPtr domain, int event, int detail)>;
  // Called on the reconnect thread after each successful (re)connection,
  // once events are registered: the place to resynchronise state.
  using ConnectedHandler = std::function<void(virConnectPtr conn)>;

  // Starts the event loop and the reconnect thread and waits up to
  // `first_wait` for the first connection. Not being connected is not an
  // error: Reachable() says why, and reconnection goes on in the background.
  static std::unique_ptr<LibvirtConnection> Start(std::string uri, LifecycleHandler on_event,
                                                  ConnectedHandler on_connected,
                                                  absl::Duration first_wait);
  ~LibvirtConnection();

  // A reference to the open connection, or UNAVAILABLE with the reason.
  // Any thread.
  absl::StatusOr<ConnRef> Get();
  // OK while connected; UNAVAILABLE with the reason otherwise. Any thread;
  // never blocks on libvirt.
  absl::Status Reachable();
  const std::string& uri() const { return uri_; }

 private:
  LibvirtConnection(std::string uri, LifecycleHandler on_event, ConnectedHandler on_connected);

  void RunReconnect();
  // Opens and registers a new connection; on the reconnect thread.
  absl::Status Connect();
  // Deregisters and closes the current connection; on the reconnect thread.
  void Disconnect();

  static void OnClose(virConnectPtr conn, int reason, void* opaque);
  static int OnLifecycle(virConnectPtr conn, virDomainPtr domain, int event, int detail,
                         void* opaque);

  const std::string uri_;
  const LifecycleHandler on_event_;
  const ConnectedHandler on_connected_;

  std::mutex mu_;
  std::condition_variable changed_;
  virConnectPtr conn_ = nullptr;  // Guarded by mu_.
  bool broken_ = false;           // The connection closed under us; guarded by mu_.
  bool stopping_ = false;         // Guarded by mu_.
  bool attempted_ = false;        // At least one connection attempt made; guarded by mu_.
  absl::Status last_error_ = absl::UnavailableError("not connected to libvirt yet");
  int lifecycle_callback_id_ = -1;  // Reconnect thread only.

  std::thread reconnect_thread_;
};

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_LIBVIRT_CONNECTION_H_

#include "vmdriver/libvirt/libvirt_connection.h"

#include <algorithm>

#include "base/logging.h"
#include "base/str_util.h"
#include "vmdriver/libvirt/libvirt_errors.h"

namespace vmlet::vmdriver::libvirt {
namespace {

constexpr Logger kLog("libvirt");

// Keepalive: a probe every 5 s, the connection is dead after 3 unanswered.
constexpr int kKeepAliveInterval = 5;
constexpr unsigned kKeepAliveCount = 3;

// libvirt's default event loop is process-wide: it is registered once and
// runs on one detached thread for the life of the process.
void StartEventLoopOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    SilenceLibvirtErrorPrinting();
    if (virEventRegisterDefaultImpl() < 0) {
      kLog.Error("registering libvirt's event loop failed");
      return;
    }
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) {
          kLog.Error("{}", LastError("running the libvirt event loop").message());
        }
      }
    }).detach();
  });
}

}  // namespace

LibvirtConnection::LibvirtConnection(std::string uri, LifecycleHandler on_event,
                                     ConnectedHandler on_connected)
    : uri_(std::move(uri)),
      on_event_(std::move(on_event)),
      on_connected_(std::move(on_connected)) {}

std::unique_ptr<LibvirtConnection> LibvirtConnection::Start(std::string uri,
                                                            LifecycleHandler on_event,
                                                            ConnectedHandler on_connected,
                                                            absl::Duration first_wait) {
  StartEventLoopOnce();
  std::unique_ptr<LibvirtConnection> connection(
      new LibvirtConnection(std::move(uri), std::move(on_event), std::move(on_connected)));
  LibvirtConnection* self = connection.get();
  self->reconnect_thread_ = std::thread([self] { self->RunReconnect(); });
  std::unique_lock lock(self->mu_);
  self->changed_.wait_for(lock, absl::ToChronoMilliseconds(first_wait),
                          [self] { return self->conn_ != nullptr || self->attempted_; });
  return connection;
}

LibvirtConnection::~LibvirtConnection() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (reconnect_thread_.joinable()) reconnect_thread_.join();
  Disconnect();
}

absl::StatusOr<ConnRef> LibvirtConnection::Get() {
  std::lock_guard lock(mu_);
  if (conn_ == nullptr || broken_) return last_error_;
  virConnectRef(conn_);
  return ConnRef(conn_);
}

absl::Status LibvirtConnection::Reachable() {
  std::lock_guard lock(mu_);
  if (conn_ != nullptr && !broken_) return absl::OkStatus();
  return last_error_;
}

void LibvirtConnection::RunReconnect() {
  absl::Duration backoff = absl::Milliseconds(200);
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (conn_ != nullptr && !broken_) {
      changed_.wait(lock, [this] { return stopping_ || broken_; });
      continue;
    }
    lock.unlock();
    Disconnect();  // Drops a broken connection, if any.
    absl::Status status = Connect();
    lock.lock();
    attempted_ = true;
    changed_.notify_all();
    if (status.ok()) {
      backoff = absl::Milliseconds(200);
      continue;
    }
    last_error_ = absl::UnavailableError(status.message());
    changed_.wait_for(lock, absl::ToChronoMilliseconds(backoff), [this] { return stopping_; });
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

absl::Status LibvirtConnection::Connect() {
  virConnectPtr conn = virConnectOpen(uri_.c_str());
  if (conn == nullptr) return LastError(StrCat("connecting to ", uri_));
  if (virConnectSetKeepAlive(conn, kKeepAliveInterval, kKeepAliveCount) < 0) {
    kLog.Warning("{}", LastError("enabling keepalive").message());
  }
  if (virConnectRegisterCloseCallback(conn, OnClose, this, nullptr) < 0) {
    absl::Status status = LastError("registering the close callback");
    virConnectClose(conn);
    return status;
  }
  int callback_id =
      virConnectDomainEventRegisterAny(conn, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                       VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle), this, nullptr);
  if (callback_id < 0) {
    absl::Status status = LastError("registering lifecycle events");
    virConnectUnregisterCloseCallback(conn, OnClose);
    virConnectClose(conn);
    return status;
  }
  lifecycle_callback_id_ = callback_id;
  unsigned long version = 0;
  virConnectGetLibVersion(conn, &version);
  {
    std::lock_guard lock(mu_);
    conn_ = conn;
    broken_ = false;
    last_error_ = absl::OkStatus();
  }
  kLog.Info("connected to {} (libvirt {}.{}.{})", uri_, version / 1000000, version / 1000 % 1000,
            version % 1000);
  if (on_connected_) on_connected_(conn);
  return absl::OkStatus();
}

void LibvirtConnection::Disconnect() {
  virConnectPtr conn = nullptr;
  {
    std::lock_guard lock(mu_);
    conn = conn_;
    conn_ = nullptr;
    broken_ = false;
  }
  if (conn == nullptr) return;
  if (lifecycle_callback_id_ >= 0) {
    virConnectDomainEventDeregisterAny(conn, lifecycle_callback_id_);
    lifecycle_callback_id_ = -1;
  }
  virConnectUnregisterCloseCallback(conn, OnClose);
  virConnectClose(conn);
}

void LibvirtConnection::OnClose(virConnectPtr conn, int reason, void* opaque) {
  auto* self = static_cast<LibvirtConnection*>(opaque);
  {
    std::lock_guard lock(self->mu_);
    if (conn != self->conn_) return;
    self->broken_ = true;
    self->last_error_ = absl::UnavailableError(
        StrCat("the connection to ", self->uri_, " closed (reason ", reason, "); reconnecting"));
  }
  kLog.Warning("connection to {} closed (reason {}); reconnecting", self->uri_, reason);
  self->changed_.notify_all();
}

int LibvirtConnection::OnLifecycle(virConnectPtr /*conn*/, virDomainPtr domain, int event,
                                   int detail, void* opaque) {
  auto* self = static_cast<LibvirtConnection*>(opaque);
  if (self->on_event_) self->on_event_(domain, event, detail);
  return 0;
}

}  // namespace vmlet::vmdriver::libvirt

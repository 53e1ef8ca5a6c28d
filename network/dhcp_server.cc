#include "network/dhcp.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/dhcp_protocol.h"
#include "network/netns.h"

namespace vmlet::network {
namespace {

using dhcp_internal::Answer;
using dhcp_internal::AnswerFrame;
using dhcp_internal::CompiledLease;
using dhcp_internal::CompileLease;
using dhcp_internal::FormatIpv4;
using dhcp_internal::FormatMac;
using dhcp_internal::kEthHeaderSize;
using dhcp_internal::kNak;
using dhcp_internal::kOffer;
using dhcp_internal::kServerPort;
using dhcp_internal::Mac;

constexpr Logger kLog("network");

// A packet socket bound to `ifname` in the calling thread's namespace,
// receiving only IPv4 UDP to port 67 that did not come from this host.
absl::StatusOr<int> OpenPacketSocket(const std::string& ifname, Mac* mac) {
  unsigned index = ::if_nametoindex(ifname.c_str());
  if (index == 0) {
    if (errno == ENODEV || errno == ENXIO) {
      return absl::NotFoundError(StrCat("no network interface \"", ifname, "\""));
    }
    return ErrnoToStatus(errno, StrCat("looking up network interface \"", ifname, "\""));
  }
  // Protocol 0 receives nothing until bind, so no frame skips the filter.
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "opening a packet socket");
  ScopeGuard close_fd([fd] { ::close(fd); });

  // Ethernet type IPv4, protocol UDP, not a fragment, destination port 67,
  // not PACKET_OUTGOING (our replies, and frames tc sends to the VM).
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_IP, 0, 10),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, kEthHeaderSize + 9),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 8),
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, kEthHeaderSize + 6),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 6, 0),
      BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, kEthHeaderSize),
      BPF_STMT(BPF_LD | BPF_H | BPF_IND, kEthHeaderSize + 2),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kServerPort, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, 0xffff),
      BPF_STMT(BPF_RET | BPF_K, 0),
  };
  sock_fprog program{.len = sizeof(code) / sizeof(code[0]), .filter = code};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof(program)) != 0) {
    return ErrnoToStatus(errno, "attaching the DHCP filter to a packet socket");
  }
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_IP);
  address.sll_ifindex = static_cast<int>(index);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return ErrnoToStatus(errno, StrCat("binding a packet socket to \"", ifname, "\""));
  }
  ifreq request{};
  std::strncpy(request.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd, SIOCGIFHWADDR, &request) != 0) {
    return ErrnoToStatus(errno, StrCat("reading the MAC address of \"", ifname, "\""));
  }
  if (request.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    return absl::FailedPreconditionError(StrCat("network interface \"", ifname,
                                                "\" is not an Ethernet device (hardware type ",
                                                request.ifr_hwaddr.sa_family, "): expected a tap"));
  }
  std::memcpy(mac->data(), request.ifr_hwaddr.sa_data, mac->size());
  close_fd.Dismiss();
  return fd;
}

}  // namespace

struct DhcpServer::Binding {
  std::string key;
  std::string ifname;
  int fd = -1;
  Mac server_mac{};
  CompiledLease lease;
  int64_t replies = 0;
};

DhcpServer::DhcpServer() = default;

DhcpServer::~DhcpServer() {
  std::thread thread;
  {
    std::lock_guard lock(mu_);
    thread = std::move(thread_);
    if (wake_fd_ >= 0) {
      uint64_t one = 1;
      (void)!::write(wake_fd_, &one, sizeof(one));
    }
  }
  if (thread.joinable()) thread.join();
  for (auto& [id, binding] : bindings_) ::close(binding->fd);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

absl::Status DhcpServer::Serve(const std::string& key, const std::string& netns_path,
                               const std::string& ifname, const DhcpLease& lease) {
  const std::string context =
      StrCat("serving DHCP for \"", key, "\" on \"", ifname, "\" in \"", netns_path, "\"");
  absl::StatusOr<CompiledLease> compiled = CompileLease(lease);
  if (!compiled.ok()) return Annotate(compiled.status(), context);
  if (ifname.empty() || ifname.size() >= IFNAMSIZ || ifname.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat(context, ": interface name \"", ifname, "\" is not 1 to 15 characters without '/'"));
  }
  auto binding = std::make_unique<Binding>();
  binding->key = key;
  binding->ifname = ifname;
  binding->lease = *std::move(compiled);
  absl::Status opened = RunInNetns(netns_path, [&]() -> absl::Status {
    VMLET_ASSIGN_OR_RETURN(binding->fd, OpenPacketSocket(ifname, &binding->server_mac));
    return absl::OkStatus();
  });
  if (!opened.ok()) return Annotate(opened, context);
  ScopeGuard close_fd([&binding] { ::close(binding->fd); });

  std::lock_guard lock(mu_);
  if (epoll_fd_ < 0) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return Annotate(ErrnoToStatus(errno, "creating an epoll instance"), context);
  }
  if (wake_fd_ < 0) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) return Annotate(ErrnoToStatus(errno, "creating an eventfd"), context);
    epoll_event event{.events = EPOLLIN, .data = {.u64 = 0}};
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) != 0) {
      absl::Status status = ErrnoToStatus(errno, "watching the eventfd");
      ::close(wake_fd_);
      wake_fd_ = -1;
      return Annotate(status, context);
    }
  }
  const uint64_t id = next_id_++;
  epoll_event event{.events = EPOLLIN, .data = {.u64 = id}};
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, binding->fd, &event) != 0) {
    return Annotate(ErrnoToStatus(errno, "watching the packet socket"), context);
  }
  close_fd.Dismiss();
  if (auto old = ids_.find(key); old != ids_.end()) {
    auto it = bindings_.find(old->second);
    binding->replies = it->second->replies;
    ::close(it->second->fd);  // Also leaves the epoll set.
    bindings_.erase(it);
    ids_.erase(old);
  }
  kLog.Debug("serving DHCP for {} on {} in {}: {}/{} to {}", key, ifname, netns_path, lease.address,
             lease.prefix_length, FormatMac(binding->lease.client_mac));
  ids_[key] = id;
  bindings_[id] = std::move(binding);
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void DhcpServer::Stop(const std::string& key) {
  std::lock_guard lock(mu_);
  auto id = ids_.find(key);
  if (id == ids_.end()) return;
  auto it = bindings_.find(id->second);
  ::close(it->second->fd);
  bindings_.erase(it);
  ids_.erase(id);
  kLog.Debug("stopped serving DHCP for {}", key);
}

int64_t DhcpServer::RepliesSent(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto id = ids_.find(key);
  return id == ids_.end() ? 0 : bindings_.at(id->second)->replies;
}

void DhcpServer::Run() {
  // epoll_fd_ is set before this thread starts and closed after it ends.
  const int epoll_fd = [this] {
    std::lock_guard lock(mu_);
    return epoll_fd_;
  }();
  epoll_event events[16];
  while (true) {
    int count = ::epoll_wait(epoll_fd, events, 16, -1);
    if (count < 0) {
      if (errno == EINTR) continue;
      kLog.Error("DHCP server stops: epoll_wait: {}", std::strerror(errno));
      return;
    }
    for (int i = 0; i < count; ++i) {
      if (events[i].data.u64 == 0) return;  // The destructor runs.
      HandleReadable(events[i].data.u64);
    }
  }
}

void DhcpServer::HandleReadable(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = bindings_.find(id);
  if (it == bindings_.end()) return;  // Stopped since epoll_wait returned.
  Binding& binding = *it->second;
  uint8_t buffer[2048];
  for (int i = 0; i < 32; ++i) {  // Then let the other sockets have a turn.
    sockaddr_ll from{};
    socklen_t from_size = sizeof(from);
    ssize_t size = ::recvfrom(binding.fd, buffer, sizeof(buffer), MSG_TRUNC,
                              reinterpret_cast<sockaddr*>(&from), &from_size);
    if (size < 0) {
      if (errno == EINTR) continue;
      // ENETDOWN: the interface went away; the error is now cleared.
      if (errno != EAGAIN) {
        kLog.Warning("DHCP for {}: reading from {}: {}", binding.key, binding.ifname,
                     std::strerror(errno));
      }
      return;
    }
    if (from.sll_pkttype == PACKET_OUTGOING || static_cast<size_t>(size) > sizeof(buffer)) continue;
    std::optional<Answer> answer =
        AnswerFrame(binding.lease, binding.server_mac, std::span<const uint8_t>(buffer, size));
    if (!answer) continue;
    if (::send(binding.fd, answer->frame.data(), answer->frame.size(), MSG_DONTWAIT) < 0) {
      kLog.Warning("DHCP for {}: sending a reply on {}: {}", binding.key, binding.ifname,
                   std::strerror(errno));
      continue;
    }
    ++binding.replies;
    std::string mac = FormatMac(binding.lease.client_mac);
    if (answer->type == kOffer) {
      kLog.Debug("DHCP for {}: OFFER {} to {}", binding.key, FormatIpv4(answer->address), mac);
    } else if (answer->type == kNak) {
      kLog.Info("DHCP for {}: NAK to {}, which asked for {}: the lease is {}", binding.key, mac,
                FormatIpv4(answer->address), FormatIpv4(binding.lease.address));
    } else if (answer->address == 0) {
      kLog.Info("DHCP for {}: ACK to {}'s INFORM", binding.key, mac);
    } else {
      kLog.Info("DHCP for {}: ACK {} to {}", binding.key, FormatIpv4(answer->address), mac);
    }
  }
}

}  // namespace vmlet::network

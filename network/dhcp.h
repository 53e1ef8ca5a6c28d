// The DHCP responder that gives a pod's VM the pod's network configuration.
//
// In a pod's network namespace the CNI interface eth0 holds the pod IP and
// the VM's tap is joined to it by tc redirects, except for IPv4 UDP to port
// 67 sent by the VM: those DHCP requests reach a packet socket bound to the
// tap, and the responder answers each with the one lease of that namespace
// (the pod IP, prefix, gateway, routes, DNS, hostname and MTU), leased
// forever. Nothing is allocated and nothing is remembered between requests.
//
// AnswerDhcpFrame is the pure protocol step (an Ethernet frame in, an
// Ethernet frame out); DhcpServer owns the sockets and the thread that runs
// it.
#ifndef VMLET_NETWORK_DHCP_H_
#define VMLET_NETWORK_DHCP_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace vmlet::network {

struct DhcpRoute {
  std::string destination;  // IPv4 CIDR, "10.96.0.0/12"; "0.0.0.0/0" for default
  std::string gateway;      // IPv4; "0.0.0.0" for a route on the link
};

struct DhcpLease {
  std::string client_mac;  // "52:54:00:12:34:56" (any case)
  std::string address;     // IPv4 "10.99.0.5"
  int prefix_length = 24;  // 1..32 (subnet mask option 1, broadcast option 28)
  std::string gateway;     // IPv4; empty = no router option
  // Extra routes: when non-empty, option 121 (RFC 3442) carries them AND the
  // default route via `gateway` (clients ignore option 3 then), unless one of
  // them already is a default route.
  std::vector<DhcpRoute> routes;
  std::vector<std::string> dns_servers;     // option 6; non-IPv4 entries are skipped
  std::vector<std::string> search_domains;  // option 119 (RFC 3397) + option 15 (first one)
  // resolv.conf options ("ndots:5"): option 224 as one space-separated ASCII
  // string (vmlet's site-specific option).
  std::vector<std::string> dns_options;
  std::string hostname;  // option 12 when non-empty
  int mtu = 0;           // option 26 when > 0
};

// OK when `lease` can be served; otherwise INVALID_ARGUMENT naming the field
// and value (bad MAC, address, prefix, gateway, route, DNS option, host or
// domain name, or a list too long for DHCP's 255-byte options). Thread-safe.
absl::Status ValidateDhcpLease(const DhcpLease& lease);

// The pure protocol step: given one received Ethernet frame, returns the
// Ethernet frame to send back, or nullopt when the frame is not a DHCP
// request for this lease (not IPv4/UDP to port 67, not a BOOTREQUEST, another
// chaddr, a REQUEST naming another server, relayed, truncated, ...) or when
// `lease` is not valid.
//
//   DISCOVER -> OFFER
//   REQUEST  -> ACK for the lease's address (option 50, else ciaddr),
//               NAK (broadcast) for any other address
//   INFORM   -> ACK without address and lease time
//   RELEASE, DECLINE -> nullopt
//
// The lease time (51) is infinite; the server identifier (54) is the gateway,
// or 169.254.1.1 without one. Options the client asked for (55) go first;
// options that would make the reply longer than the client accepts (57, at
// least 576 bytes) are left out. Reply addressing follows RFC 2131 4.1: to
// ciaddr when set, else to 255.255.255.255 and ff:ff:ff:ff:ff:ff when the
// client set the BROADCAST flag, else to yiaddr at chaddr; from `server_mac`
// and the server identifier; UDP 67 -> 68 with IP and UDP checksums; xid,
// flags and chaddr echoed. Thread-safe.
std::optional<std::vector<uint8_t>> AnswerDhcpFrame(const DhcpLease& lease,
                                                    const std::array<uint8_t, 6>& server_mac,
                                                    std::span<const uint8_t> frame);

// Serves leases on packet sockets, one per key, from one thread of its own
// (epoll), started by the first Serve. Serve, Stop and RepliesSent are
// thread-safe and may be called from any thread. The destructor stops the
// thread and closes every socket.
class DhcpServer {
 public:
  DhcpServer();
  DhcpServer(const DhcpServer&) = delete;
  DhcpServer& operator=(const DhcpServer&) = delete;
  ~DhcpServer();

  // Opens a packet socket on `ifname` in the namespace at `netns_path` and
  // answers for `lease` there; replaces the socket and lease of an existing
  // `key`. Replies come from the interface's own MAC. Errors:
  // INVALID_ARGUMENT (ValidateDhcpLease), NOT_FOUND (no such interface or
  // namespace), or the errno status.
  absl::Status Serve(const std::string& key, const std::string& netns_path,
                     const std::string& ifname, const DhcpLease& lease);

  // Stops serving `key` and closes its socket; no-op for an unknown key.
  void Stop(const std::string& key);

  // Replies sent for `key` so far (for tests and logs); 0 for unknown.
  int64_t RepliesSent(const std::string& key) const;

 private:
  struct Binding;

  void Run();  // The server thread.
  void HandleReadable(uint64_t id);

  mutable std::mutex mu_;  // Also held by the server thread while it answers.
  int epoll_fd_ = -1;      // Guarded by mu_; created by the first Serve.
  int wake_fd_ = -1;       // Guarded by mu_; eventfd, readable once the destructor runs.
  std::thread thread_;     // Guarded by mu_.
  uint64_t next_id_ = 1;   // Guarded by mu_; 0 is the wake-up event.
  std::map<std::string, uint64_t> ids_;                    // Guarded by mu_; key -> id.
  std::map<uint64_t, std::unique_ptr<Binding>> bindings_;  // Guarded by mu_; by id.
};

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_DHCP_H_

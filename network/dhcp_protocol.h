// The DHCP protocol step of dhcp.h, shared by the packet code
// (dhcp_protocol.cc) and the server (dhcp_server.cc). Not for other users.
#ifndef VMLET_NETWORK_DHCP_PROTOCOL_H_
#define VMLET_NETWORK_DHCP_PROTOCOL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "network/dhcp.h"

namespace vmlet::network::dhcp_internal {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

constexpr size_t kEthHeaderSize = 14;
constexpr uint16_t kServerPort = 67;

enum MessageType : uint8_t {
  kDiscover = 1,
  kOffer = 2,
  kRequest = 3,
  kDecline = 4,
  kAck = 5,
  kNak = 6,
  kRelease = 7,
  kInform = 8,
};

// A valid lease, with its options encoded once.
struct CompiledLease {
  Mac client_mac{};
  uint32_t address = 0;
  uint32_t server_id = 0;
  // Configuration options for OFFER and ACK, most important first: the
  // order they go out in after the mask, the router (which always fit) and
  // those the client asked for.
  std::vector<std::pair<uint8_t, Bytes>> options;
};

// What AnswerFrame sends, for logging.
struct Answer {
  Bytes frame;
  MessageType type = kAck;
  uint32_t address = 0;  // yiaddr, or the address refused by a NAK.
};

// INVALID_ARGUMENT naming the field when the lease cannot be served.
absl::StatusOr<CompiledLease> CompileLease(const DhcpLease& lease);

// The reply to one received Ethernet frame, or nullopt (see AnswerDhcpFrame).
std::optional<Answer> AnswerFrame(const CompiledLease& lease, const Mac& server_mac,
                                  std::span<const uint8_t> frame);

std::string FormatIpv4(uint32_t address);
std::string FormatMac(std::span<const uint8_t> mac);

}  // namespace vmlet::network::dhcp_internal

#endif  // VMLET_NETWORK_DHCP_PROTOCOL_H_

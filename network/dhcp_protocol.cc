#include "network/dhcp_protocol.h"

#include <arpa/inet.h>
#include <net/ethernet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::network {
namespace dhcp_internal {
namespace {

constexpr Logger kLog("network");

constexpr size_t kIpHeaderSize = 20;  // What we send: no IP options.
constexpr size_t kUdpHeaderSize = 8;
constexpr uint16_t kClientPort = 68;
constexpr Mac kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint32_t kBroadcastIp = 0xffffffff;
constexpr uint32_t kDefaultServerId = 0xa9fe0101;  // 169.254.1.1

// BOOTP message layout (RFC 2131 section 2): offsets in the UDP payload.
constexpr size_t kOp = 0, kHtype = 1, kHlen = 2, kXid = 4, kFlags = 10, kCiaddr = 12, kYiaddr = 16,
                 kGiaddr = 24, kChaddr = 28, kCookie = 236, kOptions = 240;
constexpr uint8_t kBootRequest = 1, kBootReply = 2, kHtypeEthernet = 1;
constexpr uint16_t kBroadcastFlag = 0x8000;
constexpr uint32_t kMagicCookie = 0x63825363;
constexpr size_t kMinBootpSize = 300;  // RFC 1542: some clients drop shorter replies.
// Every client accepts 576-byte IP datagrams; bigger only when it says so (57).
constexpr size_t kMinMaxMessageSize = 576, kMaxMaxMessageSize = 1500;

enum Option : uint8_t {
  kOptPad = 0,
  kOptSubnetMask = 1,
  kOptRouter = 3,
  kOptDnsServers = 6,
  kOptHostname = 12,
  kOptDomainName = 15,
  kOptMtu = 26,
  kOptBroadcast = 28,
  kOptRequestedAddress = 50,
  kOptLeaseTime = 51,
  kOptMessageType = 53,
  kOptServerId = 54,
  kOptParameterList = 55,
  kOptMessage = 56,
  kOptMaxMessageSize = 57,
  kOptDomainSearch = 119,
  kOptClasslessRoutes = 121,
  kOptDnsOptions = 224,
  kOptEnd = 255,
};

constexpr size_t kMaxOptionSize = 255;
constexpr size_t kMaxDomainNameSize = 253;
constexpr size_t kMaxLabelSize = 63;

uint16_t Get16(std::span<const uint8_t> bytes, size_t at) {
  return static_cast<uint16_t>(bytes[at] << 8 | bytes[at + 1]);
}
uint32_t Get32(std::span<const uint8_t> bytes, size_t at) {
  return uint32_t{bytes[at]} << 24 | uint32_t{bytes[at + 1]} << 16 | uint32_t{bytes[at + 2]} << 8 |
         bytes[at + 3];
}
void Put16(Bytes& bytes, size_t at, uint16_t value) {
  bytes[at] = value >> 8;
  bytes[at + 1] = value & 0xff;
}
void Put32(Bytes& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = (value >> (24 - 8 * i)) & 0xff;
}
Bytes Be32(uint32_t value) {
  Bytes bytes(4);
  Put32(bytes, 0, value);
  return bytes;
}

std::optional<uint32_t> ParseIpv4(const std::string& text) {
  in_addr addr{};
  if (::inet_pton(AF_INET, text.c_str(), &addr) != 1) return std::nullopt;
  return ntohl(addr.s_addr);
}

}  // namespace

std::string FormatIpv4(uint32_t address) {
  return StrCat(address >> 24, ".", (address >> 16) & 0xff, ".", (address >> 8) & 0xff, ".",
                address & 0xff);
}

std::string FormatMac(std::span<const uint8_t> mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5]);
}

// Not 0/8, loopback, multicast, reserved or broadcast.
namespace {

bool IsUnicast(uint32_t address) {
  uint32_t first = address >> 24;
  return first != 0 && first != 127 && first < 224;
}

uint32_t PrefixMask(int prefix_length) {
  return prefix_length == 0 ? 0 : ~uint32_t{0} << (32 - prefix_length);
}

std::optional<Mac> ParseMac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  Mac mac{};
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[3 * i - 1] != ':') return std::nullopt;
    uint8_t byte = 0;
    for (char c : text.substr(3 * i, 2)) {
      int nibble = c >= '0' && c <= '9'   ? c - '0'
                   : c >= 'a' && c <= 'f' ? c - 'a' + 10
                   : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : -1;
      if (nibble < 0) return std::nullopt;
      byte = static_cast<uint8_t>(byte << 4 | nibble);
    }
    mac[i] = byte;
  }
  return mac;
}

// `name` without its trailing dot, if it is a valid domain (or host) name.
std::optional<std::string> NormalizeDomainName(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty() || name.size() > kMaxDomainNameSize) return std::nullopt;
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok || ++label > kMaxLabelSize) return std::nullopt;
  }
  return name;
}

// RFC 1035 name encoding with compression pointers into the option (RFC 3397).
Bytes EncodeDomainList(const std::vector<std::string>& names) {
  Bytes out;
  std::map<std::string_view, size_t> suffixes;  // Views into `names`.
  for (const std::string& name : names) {
    std::string_view rest = name;
    bool pointed = false;
    while (!rest.empty()) {
      if (auto it = suffixes.find(rest); it != suffixes.end()) {
        out.push_back(static_cast<uint8_t>(0xc0 | it->second >> 8));
        out.push_back(static_cast<uint8_t>(it->second & 0xff));
        pointed = true;
        break;
      }
      if (out.size() < 0x3fff) suffixes.emplace(rest, out.size());
      size_t dot = rest.find('.');
      std::string_view label = rest.substr(0, dot);
      out.push_back(static_cast<uint8_t>(label.size()));
      out.insert(out.end(), label.begin(), label.end());
      rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
    }
    if (!pointed) out.push_back(0);
  }
  return out;
}

absl::Status TooLong(std::string_view field, size_t size) {
  return absl::InvalidArgumentError(
      StrCat(field, " encodes to ", size, " bytes: DHCP options hold at most 255"));
}

}  // namespace

absl::StatusOr<CompiledLease> CompileLease(const DhcpLease& lease) {
  CompiledLease out;
  std::optional<Mac> mac = ParseMac(lease.client_mac);
  if (!mac || ((*mac)[0] & 1) != 0 || *mac == Mac{}) {
    return absl::InvalidArgumentError(
        StrCat("client_mac \"", lease.client_mac,
               "\" is not a unicast MAC address: expected six hex bytes separated by ':' such as "
               "\"52:54:00:12:34:56\""));
  }
  out.client_mac = *mac;

  if (lease.prefix_length < 1 || lease.prefix_length > 32) {
    return absl::InvalidArgumentError(
        StrCat("prefix_length ", lease.prefix_length, " is out of range: expected 1 to 32"));
  }
  const uint32_t mask = PrefixMask(lease.prefix_length);
  std::optional<uint32_t> address = ParseIpv4(lease.address);
  if (!address || !IsUnicast(*address)) {
    return absl::InvalidArgumentError(StrCat(
        "address \"", lease.address, "\" is not a unicast IPv4 address such as \"10.99.0.5\""));
  }
  if (lease.prefix_length <= 30 && ((*address & ~mask) == 0 || (*address & ~mask) == ~mask)) {
    return absl::InvalidArgumentError(
        StrCat("address \"", lease.address, "\" is the network or broadcast address of its /",
               lease.prefix_length, " subnet: expected a host address"));
  }
  out.address = *address;

  std::optional<uint32_t> gateway;
  if (!lease.gateway.empty()) {
    gateway = ParseIpv4(lease.gateway);
    if (!gateway || !IsUnicast(*gateway) || *gateway == *address) {
      return absl::InvalidArgumentError(
          StrCat("gateway \"", lease.gateway,
                 "\" is not a unicast IPv4 address other than the lease's address"));
    }
  }
  out.server_id = gateway.value_or(kDefaultServerId);
  if (out.server_id == out.address) {
    return absl::InvalidArgumentError(
        StrCat("address \"", lease.address,
               "\" is the DHCP server identifier used without a gateway: expected another "
               "address or a gateway"));
  }

  out.options.emplace_back(kOptSubnetMask, Be32(mask));
  if (gateway) out.options.emplace_back(kOptRouter, Be32(*gateway));
  // A /31 or /32 has no broadcast address (RFC 3021).
  if (lease.prefix_length <= 30) out.options.emplace_back(kOptBroadcast, Be32(*address | ~mask));

  if (!lease.routes.empty()) {
    Bytes routes;
    bool has_default = false;
    auto append_route = [&routes](uint32_t destination, int width, uint32_t router) {
      routes.push_back(static_cast<uint8_t>(width));
      for (int i = 0; i < (width + 7) / 8; ++i)
        routes.push_back((destination >> (24 - 8 * i)) & 0xff);
      Bytes r = Be32(router);
      routes.insert(routes.end(), r.begin(), r.end());
    };
    for (size_t i = 0; i < lease.routes.size(); ++i) {
      const DhcpRoute& route = lease.routes[i];
      const std::string& cidr = route.destination;
      size_t slash = cidr.find('/');
      std::optional<uint32_t> destination =
          slash == std::string::npos ? std::nullopt : ParseIpv4(cidr.substr(0, slash));
      std::string width_text = slash == std::string::npos ? "" : cidr.substr(slash + 1);
      int width = -1;
      if (!width_text.empty() && width_text.size() <= 2 &&
          std::all_of(width_text.begin(), width_text.end(),
                      [](char c) { return c >= '0' && c <= '9'; })) {
        width = std::stoi(width_text);
      }
      if (!destination || width < 0 || width > 32 || (*destination & ~PrefixMask(width)) != 0) {
        return absl::InvalidArgumentError(
            StrCat("routes[", i, "].destination \"", cidr,
                   "\" is not an IPv4 CIDR without host bits such as \"10.96.0.0/12\""));
      }
      std::optional<uint32_t> router = ParseIpv4(route.gateway);
      if (!router || (*router != 0 && !IsUnicast(*router))) {
        return absl::InvalidArgumentError(
            StrCat("routes[", i, "].gateway \"", route.gateway,
                   "\" is not a unicast IPv4 address (or \"0.0.0.0\" for on-link)"));
      }
      has_default = has_default || width == 0;
      append_route(*destination, width, *router);
    }
    // Clients that take option 121 ignore option 3 (RFC 3442): repeat it last.
    if (gateway && !has_default) append_route(0, 0, *gateway);
    if (routes.size() > kMaxOptionSize) return TooLong("routes", routes.size());
    out.options.emplace_back(kOptClasslessRoutes, std::move(routes));
  }

  Bytes dns;
  for (const std::string& server : lease.dns_servers) {
    if (std::optional<uint32_t> ip = ParseIpv4(server)) {
      Bytes b = Be32(*ip);
      dns.insert(dns.end(), b.begin(), b.end());
    }
  }
  if (dns.size() > kMaxOptionSize) return TooLong("dns_servers", dns.size());
  if (!dns.empty()) out.options.emplace_back(kOptDnsServers, std::move(dns));

  if (!lease.search_domains.empty()) {
    std::vector<std::string> names;
    for (size_t i = 0; i < lease.search_domains.size(); ++i) {
      std::optional<std::string> name = NormalizeDomainName(lease.search_domains[i]);
      if (!name) {
        return absl::InvalidArgumentError(
            StrCat("search_domains[", i, "] \"", lease.search_domains[i],
                   "\" is not a domain name: expected dot-separated labels of 1 to 63 letters, "
                   "digits, '-' or '_', at most 253 characters"));
      }
      names.push_back(std::move(*name));
    }
    out.options.emplace_back(kOptDomainName, Bytes(names[0].begin(), names[0].end()));
    Bytes search = EncodeDomainList(names);
    if (search.size() > kMaxOptionSize) return TooLong("search_domains", search.size());
    out.options.emplace_back(kOptDomainSearch, std::move(search));
  }

  if (!lease.hostname.empty()) {
    std::optional<std::string> name = NormalizeDomainName(lease.hostname);
    if (!name) {
      return absl::InvalidArgumentError(
          StrCat("hostname \"", lease.hostname,
                 "\" is not a host name: expected dot-separated labels of 1 to 63 letters, "
                 "digits, '-' or '_', at most 253 characters"));
    }
    out.options.emplace_back(kOptHostname, Bytes(name->begin(), name->end()));
  }

  if (lease.mtu != 0) {
    if (lease.mtu < 68 || lease.mtu > 65535) {
      return absl::InvalidArgumentError(
          StrCat("mtu ", lease.mtu, " is out of range: expected 68 to 65535, or 0 for none"));
    }
    Bytes mtu(2);
    Put16(mtu, 0, static_cast<uint16_t>(lease.mtu));
    out.options.emplace_back(kOptMtu, std::move(mtu));
  }

  if (!lease.dns_options.empty()) {
    std::string joined;
    for (size_t i = 0; i < lease.dns_options.size(); ++i) {
      const std::string& option = lease.dns_options[i];
      if (option.empty() ||
          !std::all_of(option.begin(), option.end(), [](char c) { return c > ' ' && c < 0x7f; })) {
        return absl::InvalidArgumentError(
            StrCat("dns_options[", i, "] \"", option,
                   "\" is not a resolv.conf option such as \"ndots:5\": expected printable ASCII "
                   "without spaces"));
      }
      if (i > 0) joined += ' ';
      joined += option;
    }
    if (joined.size() > kMaxOptionSize) return TooLong("dns_options", joined.size());
    out.options.emplace_back(kOptDnsOptions, Bytes(joined.begin(), joined.end()));
  }
  // What matters most for connectivity first, for when not everything fits.
  constexpr uint8_t kPriority[] = {
      kOptSubnetMask, kOptRouter,     kOptClasslessRoutes, kOptDnsServers, kOptMtu,
      kOptBroadcast,  kOptDomainName, kOptDomainSearch,    kOptHostname,   kOptDnsOptions};
  auto rank = [&](const std::pair<uint8_t, Bytes>& option) {
    return std::find(std::begin(kPriority), std::end(kPriority), option.first) -
           std::begin(kPriority);
  };
  std::stable_sort(out.options.begin(), out.options.end(),
                   [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return out;
}

// The RFC 1071 checksum of `data`, continuing from `sum`.
namespace {

uint16_t InternetChecksum(std::span<const uint8_t> data, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < data.size(); i += 2) sum += Get16(data, i);
  if (data.size() % 2 == 1) sum += uint32_t{data.back()} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Options of a message, repeated ones concatenated (RFC 3396); nullopt when
// one runs past the end.
std::optional<std::map<uint8_t, Bytes>> ParseOptions(std::span<const uint8_t> data) {
  std::map<uint8_t, Bytes> options;
  size_t i = 0;
  while (i < data.size()) {
    uint8_t code = data[i++];
    if (code == kOptPad) continue;
    if (code == kOptEnd) break;
    if (i >= data.size() || i + 1 + data[i] > data.size()) return std::nullopt;
    size_t size = data[i++];
    Bytes& value = options[code];
    value.insert(value.end(), data.begin() + i, data.begin() + i + size);
    i += size;
  }
  return options;
}

// Builds the whole reply frame. `request` is the client's BOOTP message.
Bytes BuildReply(const CompiledLease& lease, const Mac& server_mac,
                 std::span<const uint8_t> request, const std::map<uint8_t, Bytes>& request_options,
                 MessageType type, uint32_t yiaddr) {
  size_t max_message = kMinMaxMessageSize;
  if (auto it = request_options.find(kOptMaxMessageSize);
      it != request_options.end() && it->second.size() == 2) {
    max_message = std::clamp<size_t>(Get16(it->second, 0), kMinMaxMessageSize, kMaxMaxMessageSize);
  }
  const size_t budget = max_message - kIpHeaderSize - kUdpHeaderSize - kOptions - 1;  // 1: end.

  Bytes options;
  auto add = [&](uint8_t code, const Bytes& value) {
    if (options.size() + 2 + value.size() > budget) return false;
    options.push_back(code);
    options.push_back(static_cast<uint8_t>(value.size()));
    options.insert(options.end(), value.begin(), value.end());
    return true;
  };
  add(kOptMessageType, Bytes{type});
  add(kOptServerId, Be32(lease.server_id));
  if (type == kNak) {
    std::string_view message = "requested address is not leased to this client";
    add(kOptMessage, Bytes(message.begin(), message.end()));
  } else {
    if (type == kOffer || yiaddr != 0) add(kOptLeaseTime, Be32(0xffffffff));
    // The mask and the router first, then what the client asked for, then the rest.
    std::vector<uint8_t> order = {kOptSubnetMask, kOptRouter};
    if (auto it = request_options.find(kOptParameterList); it != request_options.end()) {
      order.insert(order.end(), it->second.begin(), it->second.end());
    }
    for (const auto& [code, value] : lease.options) order.push_back(code);
    std::array<bool, 256> done{};
    std::string dropped;
    for (uint8_t code : order) {
      if (done[code]) continue;
      done[code] = true;
      for (const auto& [lease_code, value] : lease.options) {
        if (lease_code != code) continue;
        if (!add(code, value)) StrAppend(&dropped, dropped.empty() ? "" : ", ", code);
      }
    }
    if (!dropped.empty()) {
      kLog.Warning("DHCP reply to {} leaves out options {}: the client accepts {} bytes at most",
                   FormatMac(lease.client_mac), dropped, max_message);
    }
  }
  options.push_back(kOptEnd);

  const bool nak = type == kNak;
  const uint32_t ciaddr = nak ? 0 : Get32(request, kCiaddr);
  const bool broadcast_flag = (Get16(request, kFlags) & kBroadcastFlag) != 0;
  uint32_t destination = yiaddr;
  Mac destination_mac = lease.client_mac;
  if (nak) {
    destination = kBroadcastIp;  // RFC 2131 4.3.2: always broadcast without a relay.
  } else if (ciaddr != 0) {
    destination = ciaddr;
  } else if (broadcast_flag) {
    destination = kBroadcastIp;
  }
  if (destination == 0) destination = kBroadcastIp;  // An INFORM without ciaddr.
  if (destination == kBroadcastIp) destination_mac = kBroadcastMac;

  const size_t bootp_size = std::max(kOptions + options.size(), kMinBootpSize);
  const size_t udp_size = kUdpHeaderSize + bootp_size;
  const size_t ip_size = kIpHeaderSize + udp_size;
  Bytes frame(kEthHeaderSize + ip_size, 0);

  std::copy(destination_mac.begin(), destination_mac.end(), frame.begin());
  std::copy(server_mac.begin(), server_mac.end(), frame.begin() + 6);
  Put16(frame, 12, ETHERTYPE_IP);

  const size_t ip = kEthHeaderSize;
  frame[ip] = 0x45;  // Version 4, 5 words of header.
  Put16(frame, ip + 2, static_cast<uint16_t>(ip_size));
  frame[ip + 8] = 64;  // TTL.
  frame[ip + 9] = IPPROTO_UDP;
  Put32(frame, ip + 12, lease.server_id);
  Put32(frame, ip + 16, destination);
  Put16(frame, ip + 10,
        InternetChecksum(std::span<const uint8_t>(frame).subspan(ip, kIpHeaderSize)));

  const size_t udp = ip + kIpHeaderSize;
  Put16(frame, udp, kServerPort);
  Put16(frame, udp + 2, kClientPort);
  Put16(frame, udp + 4, static_cast<uint16_t>(udp_size));

  const size_t bootp = udp + kUdpHeaderSize;
  frame[bootp + kOp] = kBootReply;
  frame[bootp + kHtype] = kHtypeEthernet;
  frame[bootp + kHlen] = 6;
  std::copy_n(request.begin() + kXid, 4, frame.begin() + bootp + kXid);
  std::copy_n(request.begin() + kFlags, 2, frame.begin() + bootp + kFlags);
  Put32(frame, bootp + kCiaddr, ciaddr);
  Put32(frame, bootp + kYiaddr, yiaddr);
  std::copy_n(request.begin() + kGiaddr, 4, frame.begin() + bootp + kGiaddr);
  std::copy_n(request.begin() + kChaddr, 16, frame.begin() + bootp + kChaddr);
  Put32(frame, bootp + kCookie, kMagicCookie);
  std::copy(options.begin(), options.end(), frame.begin() + bootp + kOptions);

  // The UDP checksum covers a pseudo-header: addresses, protocol, length.
  uint32_t pseudo = (lease.server_id >> 16) + (lease.server_id & 0xffff) + (destination >> 16) +
                    (destination & 0xffff) + IPPROTO_UDP + udp_size;
  uint16_t checksum = InternetChecksum(std::span<const uint8_t>(frame).subspan(udp), pseudo);
  Put16(frame, udp + 6, checksum == 0 ? 0xffff : checksum);
  return frame;
}

}  // namespace

std::optional<Answer> AnswerFrame(const CompiledLease& lease, const Mac& server_mac,
                                  std::span<const uint8_t> frame) {
  if (frame.size() < kEthHeaderSize + kIpHeaderSize || Get16(frame, 12) != ETHERTYPE_IP) {
    return std::nullopt;
  }
  std::span<const uint8_t> ip = frame.subspan(kEthHeaderSize);
  const size_t ip_header_size = size_t{ip[0] & 0x0fu} * 4;
  const size_t ip_size = Get16(ip, 2);
  if ((ip[0] >> 4) != 4 || ip_header_size < kIpHeaderSize || ip_size > ip.size() ||
      ip_size < ip_header_size + kUdpHeaderSize || ip[9] != IPPROTO_UDP ||
      (Get16(ip, 6) & 0x3fff) != 0) {  // A fragment.
    return std::nullopt;
  }
  std::span<const uint8_t> udp = ip.subspan(ip_header_size, ip_size - ip_header_size);
  const size_t udp_size = Get16(udp, 4);
  if (Get16(udp, 2) != kServerPort || udp_size > udp.size() ||
      udp_size < kUdpHeaderSize + kOptions) {
    return std::nullopt;
  }
  std::span<const uint8_t> request = udp.subspan(kUdpHeaderSize, udp_size - kUdpHeaderSize);
  if (request[kOp] != kBootRequest || request[kHtype] != kHtypeEthernet || request[kHlen] != 6 ||
      !std::equal(lease.client_mac.begin(), lease.client_mac.end(), request.begin() + kChaddr) ||
      Get32(request, kGiaddr) != 0 ||  // Relayed: not from the VM on this tap.
      Get32(request, kCookie) != kMagicCookie) {
    return std::nullopt;
  }
  std::optional<std::map<uint8_t, Bytes>> options = ParseOptions(request.subspan(kOptions));
  if (!options) return std::nullopt;
  auto option = [&](uint8_t code) -> const Bytes* {
    auto it = options->find(code);
    return it == options->end() ? nullptr : &it->second;
  };
  const Bytes* message_type = option(kOptMessageType);
  if (message_type == nullptr || message_type->size() != 1) return std::nullopt;  // Plain BOOTP.

  Answer answer;
  switch ((*message_type)[0]) {
    case kDiscover:
      answer.type = kOffer;
      answer.address = lease.address;
      break;
    case kRequest: {
      if (const Bytes* server = option(kOptServerId);
          server != nullptr && (server->size() != 4 || Get32(*server, 0) != lease.server_id)) {
        return std::nullopt;  // The client chose another server's offer.
      }
      const Bytes* requested = option(kOptRequestedAddress);
      uint32_t address = requested != nullptr && requested->size() == 4 ? Get32(*requested, 0)
                                                                        : Get32(request, kCiaddr);
      answer.type = address == lease.address ? kAck : kNak;
      answer.address = address;
      break;
    }
    case kInform:
      answer.type = kAck;
      answer.address = 0;
      break;
    default:  // DECLINE and RELEASE need no answer; the rest are not requests.
      return std::nullopt;
  }
  answer.frame = BuildReply(lease, server_mac, request, *options, answer.type,
                            answer.type == kNak ? 0 : answer.address);
  return answer;
}

}  // namespace dhcp_internal

using dhcp_internal::Answer;
using dhcp_internal::AnswerFrame;
using dhcp_internal::CompiledLease;
using dhcp_internal::CompileLease;

absl::Status ValidateDhcpLease(const DhcpLease& lease) { return CompileLease(lease).status(); }

std::optional<std::vector<uint8_t>> AnswerDhcpFrame(const DhcpLease& lease,
                                                    const std::array<uint8_t, 6>& server_mac,
                                                    std::span<const uint8_t> frame) {
  absl::StatusOr<CompiledLease> compiled = CompileLease(lease);
  if (!compiled.ok()) return std::nullopt;
  std::optional<Answer> answer = AnswerFrame(*compiled, server_mac, frame);
  if (!answer) return std::nullopt;
  return std::move(answer->frame);
}

}  // namespace vmlet::network

// The DHCP responder: the protocol step on hand-built frames, lease
// validation, and busybox udhcpc getting a lease over a veth pair between
// two network namespaces (root only).
#include "network/dhcp.h"

#include <unistd.h>

#include <functional>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/process.h"
#include "base/scope_guard.h"
#include "network/netns.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::network {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

constexpr Mac kClientMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr Mac kServerMac = {0xfe, 0x00, 0x00, 0xaa, 0xbb, 0xcc};
constexpr uint32_t kAddress = 0x0a630005;  // 10.99.0.5
constexpr uint32_t kGateway = 0x0a630001;  // 10.99.0.1
constexpr uint32_t kXid = 0xdeadbeef;

enum : uint8_t { kDiscover = 1, kOffer = 2, kRequest = 3, kDecline = 4, kAck = 5, kNak = 6 };
enum : uint8_t { kRelease = 7, kInform = 8 };

DhcpLease FullLease() {
  DhcpLease lease;
  lease.client_mac = "52:54:00:12:34:56";
  lease.address = "10.99.0.5";
  lease.prefix_length = 24;
  lease.gateway = "10.99.0.1";
  lease.routes = {{"10.96.0.0/12", "10.99.0.1"}};
  lease.dns_servers = {"10.96.0.10", "fd00::10", "10.96.0.11"};
  lease.search_domains = {"svc.cluster.local", "cluster.local"};
  lease.dns_options = {"ndots:5", "timeout:2"};
  lease.hostname = "web-0";
  lease.mtu = 1450;
  return lease;
}

DhcpLease MinimalLease() {
  DhcpLease lease;
  lease.client_mac = "52:54:00:12:34:56";
  lease.address = "10.99.0.5";
  return lease;
}

Bytes Be32(uint32_t value) {
  return {uint8_t(value >> 24), uint8_t(value >> 16), uint8_t(value >> 8), uint8_t(value)};
}
uint16_t Get16(const Bytes& b, size_t at) { return uint16_t(b[at] << 8 | b[at + 1]); }
uint32_t Get32(const Bytes& b, size_t at) {
  return uint32_t(b[at]) << 24 | uint32_t(b[at + 1]) << 16 | uint32_t(b[at + 2]) << 8 | b[at + 3];
}
void Put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = uint8_t(v >> 8);
  b[at + 1] = uint8_t(v);
}
void Put32(Bytes& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (24 - 8 * i));
}
Bytes Text(std::string_view text) { return Bytes(text.begin(), text.end()); }

uint32_t SumWords(const Bytes& b, size_t from, size_t to, uint32_t sum = 0) {
  for (size_t i = from; i + 1 < to; i += 2) sum += Get16(b, i);
  if ((to - from) % 2 == 1) sum += uint32_t(b[to - 1]) << 8;
  return sum;
}
uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

struct RequestSpec {
  uint8_t type = kDiscover;
  Mac chaddr = kClientMac;
  uint32_t ciaddr = 0;
  bool broadcast = false;
  std::vector<std::pair<uint8_t, Bytes>> options;
};

// A client's frame as udhcpc sends it: from 0.0.0.0:68 to 255.255.255.255:67.
Bytes BuildRequest(const RequestSpec& spec) {
  Bytes options = {53, 1, spec.type};
  for (const auto& [code, value] : spec.options) {
    options.push_back(code);
    options.push_back(uint8_t(value.size()));
    options.insert(options.end(), value.begin(), value.end());
  }
  options.push_back(255);
  const size_t bootp_size = 240 + options.size();
  Bytes frame(14 + 20 + 8 + bootp_size, 0);
  std::fill_n(frame.begin(), 6, 0xff);
  std::copy(spec.chaddr.begin(), spec.chaddr.end(), frame.begin() + 6);
  Put16(frame, 12, 0x0800);
  frame[14] = 0x45;
  Put16(frame, 16, uint16_t(20 + 8 + bootp_size));
  frame[22] = 64;
  frame[23] = 17;
  Put32(frame, 30, 0xffffffff);
  Put16(frame, 34, 68);
  Put16(frame, 36, 67);
  Put16(frame, 38, uint16_t(8 + bootp_size));
  const size_t b = 42;
  frame[b] = 1;
  frame[b + 1] = 1;
  frame[b + 2] = 6;
  Put32(frame, b + 4, kXid);
  if (spec.broadcast) Put16(frame, b + 10, 0x8000);
  Put32(frame, b + 12, spec.ciaddr);
  std::copy(spec.chaddr.begin(), spec.chaddr.end(), frame.begin() + b + 28);
  Put32(frame, b + 236, 0x63825363);
  std::copy(options.begin(), options.end(), frame.begin() + b + 240);
  return frame;
}

struct Reply {
  Mac eth_dst{}, eth_src{};
  uint32_t ip_src = 0, ip_dst = 0, ip_size = 0;
  uint16_t flags = 0;
  uint32_t xid = 0, ciaddr = 0, yiaddr = 0;
  Mac chaddr{};
  size_t bootp_size = 0;
  std::map<uint8_t, Bytes> options;
  uint8_t type = 0;
};

// Parses a reply and checks its framing and both checksums.
void ParseReply(const Bytes& frame, Reply* reply) {
  ASSERT_GE(frame.size(), 14u + 20 + 8 + 240);
  std::copy_n(frame.begin(), 6, reply->eth_dst.begin());
  std::copy_n(frame.begin() + 6, 6, reply->eth_src.begin());
  ASSERT_EQ(Get16(frame, 12), 0x0800);
  ASSERT_EQ(frame[14], 0x45);
  reply->ip_size = Get16(frame, 16);
  ASSERT_EQ(reply->ip_size, frame.size() - 14);
  EXPECT_EQ(frame[23], 17);
  EXPECT_GT(frame[22], 0);  // TTL.
  EXPECT_EQ(Fold(SumWords(frame, 14, 34)), 0xffff) << "IP header checksum";
  reply->ip_src = Get32(frame, 26);
  reply->ip_dst = Get32(frame, 30);
  EXPECT_EQ(Get16(frame, 34), 67);
  EXPECT_EQ(Get16(frame, 36), 68);
  const uint16_t udp_size = Get16(frame, 38);
  ASSERT_EQ(udp_size, frame.size() - 34);
  uint32_t pseudo = (reply->ip_src >> 16) + (reply->ip_src & 0xffff) + (reply->ip_dst >> 16) +
                    (reply->ip_dst & 0xffff) + 17 + udp_size;
  EXPECT_NE(Get16(frame, 40), 0);
  EXPECT_EQ(Fold(SumWords(frame, 34, frame.size(), pseudo)), 0xffff) << "UDP checksum";

  const size_t b = 42;
  reply->bootp_size = frame.size() - b;
  EXPECT_EQ(frame[b], 2);  // BOOTREPLY.
  EXPECT_EQ(frame[b + 1], 1);
  EXPECT_EQ(frame[b + 2], 6);
  reply->xid = Get32(frame, b + 4);
  reply->flags = Get16(frame, b + 10);
  reply->ciaddr = Get32(frame, b + 12);
  reply->yiaddr = Get32(frame, b + 16);
  std::copy_n(frame.begin() + b + 28, 6, reply->chaddr.begin());
  ASSERT_EQ(Get32(frame, b + 236), 0x63825363u);
  size_t i = b + 240;
  bool ended = false;
  while (i < frame.size()) {
    uint8_t code = frame[i++];
    if (code == 0) continue;
    if (code == 255) {
      ended = true;
      break;
    }
    ASSERT_LT(i, frame.size());
    size_t size = frame[i++];
    ASSERT_LE(i + size, frame.size());
    ASSERT_EQ(reply->options.count(code), 0u) << "option " << int(code) << " twice";
    reply->options[code] = Bytes(frame.begin() + i, frame.begin() + i + size);
    i += size;
  }
  EXPECT_TRUE(ended) << "no end option";
  ASSERT_EQ(reply->options[53].size(), 1u);
  reply->type = reply->options[53][0];
}

Reply Answer(const DhcpLease& lease, const RequestSpec& spec) {
  std::optional<Bytes> frame = AnswerDhcpFrame(lease, kServerMac, BuildRequest(spec));
  Reply reply;
  EXPECT_TRUE(frame.has_value());
  if (frame) ParseReply(*frame, &reply);
  return reply;
}

TEST(AnswerDhcpFrameTest, DiscoverGetsAnOfferWithEveryOption) {
  Reply offer = Answer(FullLease(), {.type = kDiscover});
  EXPECT_EQ(offer.type, kOffer);
  EXPECT_EQ(offer.eth_dst, kClientMac);
  EXPECT_EQ(offer.eth_src, kServerMac);
  EXPECT_EQ(offer.ip_src, kGateway);
  EXPECT_EQ(offer.ip_dst, kAddress);
  EXPECT_EQ(offer.xid, kXid);
  EXPECT_EQ(offer.flags, 0);
  EXPECT_EQ(offer.chaddr, kClientMac);
  EXPECT_EQ(offer.ciaddr, 0u);
  EXPECT_EQ(offer.yiaddr, kAddress);
  EXPECT_GE(offer.bootp_size, 300u);
  EXPECT_LE(offer.ip_size, 576u);

  auto& o = offer.options;
  EXPECT_THAT(o[54], ElementsAre(10, 99, 0, 1));
  EXPECT_THAT(o[51], ElementsAre(0xff, 0xff, 0xff, 0xff));
  EXPECT_THAT(o[1], ElementsAre(255, 255, 255, 0));
  EXPECT_THAT(o[3], ElementsAre(10, 99, 0, 1));
  EXPECT_THAT(o[28], ElementsAre(10, 99, 0, 255));
  // The IPv6 server is skipped.
  EXPECT_THAT(o[6], ElementsAre(10, 96, 0, 10, 10, 96, 0, 11));
  EXPECT_EQ(o[12], Text("web-0"));
  EXPECT_EQ(o[15], Text("svc.cluster.local"));
  EXPECT_THAT(o[26], ElementsAre(0x05, 0xaa));  // 1450.
  // "svc.cluster.local", then "cluster.local" as a pointer to offset 4.
  EXPECT_THAT(o[119], ElementsAre(3, 's', 'v', 'c', 7, 'c', 'l', 'u', 's', 't', 'e', 'r', 5, 'l',
                                  'o', 'c', 'a', 'l', 0, 0xc0, 4));
  // 10.96.0.0/12 via 10.99.0.1, then the default route via the gateway.
  EXPECT_THAT(o[121], ElementsAre(12, 10, 96, 10, 99, 0, 1, 0, 10, 99, 0, 1));
  EXPECT_EQ(o[224], Text("ndots:5 timeout:2"));
}

TEST(AnswerDhcpFrameTest, RequestForTheLeaseGetsAnAck) {
  Reply ack = Answer(FullLease(),
                     {.type = kRequest, .options = {{50, Be32(kAddress)}, {54, Be32(kGateway)}}});
  EXPECT_EQ(ack.type, kAck);
  EXPECT_EQ(ack.yiaddr, kAddress);
  EXPECT_EQ(ack.ip_dst, kAddress);
  EXPECT_EQ(ack.eth_dst, kClientMac);
  EXPECT_THAT(ack.options[51], ElementsAre(0xff, 0xff, 0xff, 0xff));
  EXPECT_THAT(ack.options[1], ElementsAre(255, 255, 255, 0));
  EXPECT_EQ(ack.options[224], Text("ndots:5 timeout:2"));
}

TEST(AnswerDhcpFrameTest, RenewingWithCiaddrGetsAUnicastAck) {
  Reply ack = Answer(FullLease(), {.type = kRequest, .ciaddr = kAddress, .broadcast = true});
  EXPECT_EQ(ack.type, kAck);
  EXPECT_EQ(ack.ciaddr, kAddress);
  EXPECT_EQ(ack.yiaddr, kAddress);
  EXPECT_EQ(ack.ip_dst, kAddress);
  EXPECT_EQ(ack.eth_dst, kClientMac);
  EXPECT_EQ(ack.flags, 0x8000);
}

TEST(AnswerDhcpFrameTest, BroadcastFlagGetsABroadcastReply) {
  Reply offer = Answer(FullLease(), {.type = kDiscover, .broadcast = true});
  EXPECT_EQ(offer.ip_dst, 0xffffffffu);
  EXPECT_EQ(offer.eth_dst, (Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
  EXPECT_EQ(offer.flags, 0x8000);
  EXPECT_EQ(offer.yiaddr, kAddress);
}

TEST(AnswerDhcpFrameTest, RequestForAnotherAddressGetsABroadcastNak) {
  for (const RequestSpec& spec : {
           RequestSpec{.type = kRequest, .options = {{50, Be32(0x0a630009)}}},
           RequestSpec{.type = kRequest, .options = {{50, Be32(0x0a630009)}, {54, Be32(kGateway)}}},
           RequestSpec{.type = kRequest, .ciaddr = 0x0a630009},
           RequestSpec{.type = kRequest},  // Neither option 50 nor ciaddr.
       }) {
    Reply nak = Answer(FullLease(), spec);
    EXPECT_EQ(nak.type, kNak);
    EXPECT_EQ(nak.yiaddr, 0u);
    EXPECT_EQ(nak.ciaddr, 0u);
    EXPECT_EQ(nak.ip_dst, 0xffffffffu);
    EXPECT_EQ(nak.eth_dst, (Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
    EXPECT_THAT(nak.options[54], ElementsAre(10, 99, 0, 1));
    EXPECT_EQ(nak.options.count(51), 0u);
    EXPECT_EQ(nak.options.count(1), 0u);
    EXPECT_EQ(nak.xid, kXid);
  }
}

TEST(AnswerDhcpFrameTest, InformGetsAnAckWithoutAddressOrLeaseTime) {
  Reply ack = Answer(FullLease(), {.type = kInform, .ciaddr = kAddress});
  EXPECT_EQ(ack.type, kAck);
  EXPECT_EQ(ack.yiaddr, 0u);
  EXPECT_EQ(ack.ciaddr, kAddress);
  EXPECT_EQ(ack.ip_dst, kAddress);
  EXPECT_EQ(ack.options.count(51), 0u);
  EXPECT_THAT(ack.options[6], ElementsAre(10, 96, 0, 10, 10, 96, 0, 11));
  EXPECT_EQ(ack.options[15], Text("svc.cluster.local"));
}

TEST(AnswerDhcpFrameTest, MinimalLeaseUsesTheLinkLocalServerIdAndNoOptionalOptions) {
  Reply offer = Answer(MinimalLease(), {.type = kDiscover});
  EXPECT_EQ(offer.ip_src, 0xa9fe0101u);
  EXPECT_THAT(offer.options[54], ElementsAre(169, 254, 1, 1));
  EXPECT_THAT(offer.options[1], ElementsAre(255, 255, 255, 0));
  for (uint8_t code : {3, 6, 12, 15, 26, 119, 121, 224}) {
    EXPECT_EQ(offer.options.count(code), 0u) << int(code);
  }
  Reply ack = Answer(MinimalLease(),
                     {.type = kRequest, .options = {{50, Be32(kAddress)}, {54, Be32(0xa9fe0101)}}});
  EXPECT_EQ(ack.type, kAck);
}

TEST(AnswerDhcpFrameTest, HostRouteLeaseHasNoBroadcastAndKeepsAGivenDefaultRoute) {
  DhcpLease lease = MinimalLease();
  lease.prefix_length = 32;
  lease.gateway = "169.254.1.1";
  lease.routes = {{"169.254.1.1/32", "0.0.0.0"}, {"0.0.0.0/0", "169.254.1.1"}};
  Reply offer = Answer(lease, {.type = kDiscover});
  EXPECT_THAT(offer.options[1], ElementsAre(255, 255, 255, 255));
  EXPECT_EQ(offer.options.count(28), 0u);
  EXPECT_THAT(offer.options[121], ElementsAre(32, 169, 254, 1, 1, 0, 0, 0, 0, 0, 169, 254, 1, 1));
}

TEST(AnswerDhcpFrameTest, SearchDomainsShareSuffixes) {
  DhcpLease lease = MinimalLease();
  lease.search_domains = {"default.svc.cluster.local.", "svc.cluster.local", "example.com"};
  Reply offer = Answer(lease, {.type = kDiscover});
  Bytes expected = {7,   'd', 'e', 'f', 'a', 'u', 'l', 't', 3,   's', 'v', 'c', 7,   'c',
                    'l', 'u', 's', 't', 'e', 'r', 5,   'l', 'o', 'c', 'a', 'l', 0,   0xc0,
                    8,   7,   'e', 'x', 'a', 'm', 'p', 'l', 'e', 3,   'c', 'o', 'm', 0};
  EXPECT_THAT(offer.options[119], ElementsAreArray(expected));
  EXPECT_EQ(offer.options[15], Text("default.svc.cluster.local"));
}

TEST(AnswerDhcpFrameTest, OptionsThatDoNotFitLeaveRoomForTheRequestedOnes) {
  DhcpLease lease = FullLease();
  lease.search_domains.clear();
  for (int i = 0; i < 12; ++i) lease.search_domains.push_back("n" + std::to_string(i) + ".example");
  lease.dns_options = {std::string(200, 'x')};
  lease.hostname = std::string(60, 'h');
  // Without 57 the reply stays within 576 bytes; what the client asks for comes first.
  Reply small = Answer(lease, {.type = kDiscover, .options = {{55, {1, 3, 224, 12}}}});
  EXPECT_LE(small.ip_size, 576u);
  EXPECT_EQ(small.options[224], Text(std::string(200, 'x')));
  EXPECT_EQ(small.options[12], Text(std::string(60, 'h')));
  EXPECT_EQ(small.options.count(121), 1u);  // Routes before names.
  EXPECT_EQ(small.options.count(119), 0u);
  EXPECT_EQ(small.options.count(51), 1u);
  // With a bigger maximum message size, everything goes.
  Reply big = Answer(lease, {.type = kDiscover, .options = {{57, {0x05, 0xdc}}}});
  EXPECT_GT(big.ip_size, 576u);
  EXPECT_LE(big.ip_size, 1500u);
  for (uint8_t code : {1, 3, 6, 12, 15, 26, 28, 119, 121, 224}) {
    EXPECT_EQ(big.options.count(code), 1u) << int(code);
  }
}

TEST(AnswerDhcpFrameTest, IgnoresWhatIsNotARequestForThisLease) {
  const DhcpLease lease = FullLease();
  auto answer = [&](const Bytes& frame) { return AnswerDhcpFrame(lease, kServerMac, frame); };
  EXPECT_TRUE(answer(BuildRequest({.type = kDiscover})).has_value());

  EXPECT_FALSE(answer(BuildRequest({.chaddr = {0x52, 0x54, 0x00, 0x12, 0x34, 0x57}})));
  EXPECT_FALSE(answer(
      BuildRequest({.type = kRequest, .options = {{50, Be32(kAddress)}, {54, Be32(0x0a630002)}}})));
  EXPECT_FALSE(answer(BuildRequest({.type = kRelease, .ciaddr = kAddress})));
  EXPECT_FALSE(answer(BuildRequest({.type = kDecline, .options = {{50, Be32(kAddress)}}})));
  EXPECT_FALSE(answer(BuildRequest({.type = kOffer})));
  EXPECT_FALSE(answer(BuildRequest({.type = kAck})));

  Bytes frame = BuildRequest({});
  Put16(frame, 36, 53);  // UDP to DNS.
  EXPECT_FALSE(answer(frame));
  frame = BuildRequest({});
  Put16(frame, 12, 0x0806);  // ARP.
  EXPECT_FALSE(answer(frame));
  frame = BuildRequest({});
  frame[23] = 6;  // TCP.
  EXPECT_FALSE(answer(frame));
  frame = BuildRequest({});
  frame[42] = 2;  // BOOTREPLY.
  EXPECT_FALSE(answer(frame));
  frame = BuildRequest({});
  Put16(frame, 20, 0x2000);  // A fragment.
  EXPECT_FALSE(answer(frame));
  frame = BuildRequest({});
  Put32(frame, 42 + 24, 0x0a000001);  // Relayed.
  EXPECT_FALSE(answer(frame));
  frame = BuildRequest({});
  frame[42 + 240] = 0;  // Plain BOOTP: option 53 padded out.
  frame[42 + 241] = 0;
  frame[42 + 242] = 0;
  EXPECT_FALSE(answer(frame));

  DhcpLease invalid = lease;
  invalid.address = "nope";
  EXPECT_FALSE(AnswerDhcpFrame(invalid, kServerMac, BuildRequest({})));
}

TEST(AnswerDhcpFrameTest, AcceptsAPaddedFrameAndIpOptions) {
  const DhcpLease lease = FullLease();
  Bytes frame = BuildRequest({});
  frame.resize(frame.size() + 30, 0);  // Ethernet padding after the IP datagram.
  EXPECT_TRUE(AnswerDhcpFrame(lease, kServerMac, frame).has_value());

  Bytes with_options = BuildRequest({});
  with_options.insert(with_options.begin() + 34, {1, 1, 1, 0});  // NOP NOP NOP EOL.
  with_options[14] = 0x46;
  Put16(with_options, 16, uint16_t(Get16(with_options, 16) + 4));
  std::optional<Bytes> reply = AnswerDhcpFrame(lease, kServerMac, with_options);
  ASSERT_TRUE(reply.has_value());
  Reply parsed;
  ParseReply(*reply, &parsed);
  EXPECT_EQ(parsed.type, kOffer);
}

TEST(AnswerDhcpFrameTest, NeverCrashesOnTruncatedOrRandomFrames) {
  const DhcpLease lease = FullLease();
  const Bytes valid =
      BuildRequest({.type = kRequest, .options = {{50, Be32(kAddress)}, {55, {1, 3, 6, 121}}}});
  ASSERT_TRUE(AnswerDhcpFrame(lease, kServerMac, valid).has_value());
  for (size_t size = 0; size < valid.size(); ++size) {
    EXPECT_FALSE(AnswerDhcpFrame(lease, kServerMac, std::span(valid.data(), size)).has_value())
        << size;
  }
  std::mt19937 random(42);
  for (int i = 0; i < 20000; ++i) {
    Bytes frame;
    if (i % 2 == 0) {
      frame.resize(random() % 700);
      for (uint8_t& byte : frame) byte = uint8_t(random());
      if (frame.size() > 42 && i % 4 == 0) {  // Mostly valid headers, random BOOTP.
        std::copy_n(valid.begin(), 42, frame.begin());
        Put16(frame, 16, uint16_t(frame.size() - 14));
        Put16(frame, 38, uint16_t(frame.size() - 34));
      }
    } else {
      frame = valid;
      for (int flips = 1 + random() % 4; flips > 0; --flips) {
        frame[random() % frame.size()] = uint8_t(random());
      }
      frame.resize(frame.size() - random() % 20);
    }
    std::optional<Bytes> reply = AnswerDhcpFrame(lease, kServerMac, frame);
    if (reply) {
      Reply parsed;
      ParseReply(*reply, &parsed);
    }
  }
}

TEST(ValidateDhcpLeaseTest, AcceptsFullAndMinimalLeases) {
  EXPECT_TRUE(ValidateDhcpLease(FullLease()).ok()) << ValidateDhcpLease(FullLease());
  EXPECT_TRUE(ValidateDhcpLease(MinimalLease()).ok());
  DhcpLease upper = MinimalLease();
  upper.client_mac = "52:54:00:AB:CD:EF";
  EXPECT_TRUE(ValidateDhcpLease(upper).ok());
}

TEST(ValidateDhcpLeaseTest, NamesTheFieldAndValueOfBadInput) {
  struct Case {
    std::function<void(DhcpLease&)> change;
    std::string message;  // Expected in the error.
  };
  std::vector<std::string> many_servers;
  for (int i = 0; i < 64; ++i) many_servers.push_back("10.0.0." + std::to_string(i + 1));
  std::vector<std::string> many_domains;
  for (int i = 0; i < 20; ++i) {
    std::string n = std::to_string(i);
    many_domains.push_back("d" + n + ".zone" + n + ".example" + n);  // No shared suffixes.
  }
  const Case cases[] = {
      {[](DhcpLease& l) { l.client_mac = "52:54:00:12:34"; }, "client_mac \"52:54:00:12:34\""},
      {[](DhcpLease& l) { l.client_mac = "52:54:00:12:34:zz"; }, "client_mac"},
      {[](DhcpLease& l) { l.client_mac = "01:00:5e:00:00:01"; }, "client_mac \"01:00:5e"},
      {[](DhcpLease& l) { l.address = "10.99.0"; }, "address \"10.99.0\""},
      {[](DhcpLease& l) { l.address = "224.0.0.1"; }, "address \"224.0.0.1\""},
      {[](DhcpLease& l) { l.address = "10.99.0.0"; }, "network or broadcast"},
      {[](DhcpLease& l) { l.address = "10.99.0.255"; }, "address \"10.99.0.255\""},
      {[](DhcpLease& l) { l.prefix_length = 0; }, "prefix_length 0"},
      {[](DhcpLease& l) { l.prefix_length = 33; }, "prefix_length 33"},
      {[](DhcpLease& l) { l.gateway = "gw"; }, "gateway \"gw\""},
      {[](DhcpLease& l) { l.gateway = "10.99.0.5"; }, "gateway \"10.99.0.5\""},
      {[](DhcpLease& l) { l.routes[0].destination = "10.96.0.1/12"; },
       "routes[0].destination \"10.96.0.1/12\""},
      {[](DhcpLease& l) { l.routes[0].destination = "10.96.0.0/33"; }, "routes[0].destination"},
      {[](DhcpLease& l) { l.routes[0].destination = "10.96.0.0"; }, "routes[0].destination"},
      {[](DhcpLease& l) {
         l.routes.push_back({"10.0.0.0/8", "x"});
       },
       "routes[1].gateway \"x\""},
      {[](DhcpLease& l) { l.hostname = "web 0"; }, "hostname \"web 0\""},
      {[](DhcpLease& l) { l.hostname = std::string(64, 'a'); }, "hostname"},
      {[](DhcpLease& l) { l.search_domains.push_back("a..b"); }, "search_domains[2] \"a..b\""},
      {[&](DhcpLease& l) { l.search_domains = many_domains; }, "search_domains encodes to"},
      {[](DhcpLease& l) { l.dns_options.push_back("nd ots"); }, "dns_options[2] \"nd ots\""},
      {[](DhcpLease& l) { l.dns_options.push_back(""); }, "dns_options[2]"},
      {[](DhcpLease& l) { l.dns_options = {std::string(256, 'x')}; }, "dns_options encodes to"},
      {[&](DhcpLease& l) { l.dns_servers = many_servers; }, "dns_servers encodes to 256"},
      {[](DhcpLease& l) { l.mtu = 10; }, "mtu 10"},
      {[](DhcpLease& l) {
         l.gateway = "";
         l.address = "169.254.1.1";
         l.prefix_length = 16;
       },
       "server identifier"},
  };
  for (const Case& c : cases) {
    DhcpLease lease = FullLease();
    c.change(lease);
    absl::Status status = ValidateDhcpLease(lease);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  }
}

// Runs `argv` in the namespace at `netns`.
absl::Status RunIn(const std::string& netns, const std::vector<std::string>& argv) {
  return RunInNetns(netns, [&] { return RunProcessOk(argv); });
}

TEST(DhcpServerTest, BusyboxUdhcpcGetsTheLease) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
  if (::access("/bin/busybox", X_OK) != 0) GTEST_SKIP() << "needs /bin/busybox";
  vmlet::testing::TempDir dir;
  const std::string server_ns = dir.path() + "/server-ns";
  const std::string client_ns = dir.path() + "/client-ns";
  ASSERT_TRUE(CreateNetns(server_ns).ok());
  ScopeGuard remove_server([&] { EXPECT_TRUE(RemoveNetns(server_ns).ok()); });
  ASSERT_TRUE(CreateNetns(client_ns).ok());
  ScopeGuard remove_client([&] { EXPECT_TRUE(RemoveNetns(client_ns).ok()); });
  // The veths go away with the namespaces.
  absl::Status status =
      RunIn(server_ns, {"ip", "link", "add", "dhcps0", "type", "veth", "peer", "name", "dhcpc0",
                        "address", "52:54:00:12:34:56", "netns", client_ns});
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(RunIn(server_ns, {"ip", "link", "set", "dhcps0", "up"}).ok());
  ASSERT_TRUE(RunIn(client_ns, {"ip", "link", "set", "dhcpc0", "up"}).ok());

  // Declared after the guards: its sockets close before the namespaces go.
  DhcpServer server;
  EXPECT_EQ(server.Serve("pod", server_ns, "nosuch0", FullLease()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(server.Serve("pod", dir.path() + "/no-ns", "dhcps0", FullLease()).code(),
            absl::StatusCode::kNotFound);
  DhcpLease invalid = FullLease();
  invalid.prefix_length = 40;
  EXPECT_EQ(server.Serve("pod", server_ns, "dhcps0", invalid).code(),
            absl::StatusCode::kInvalidArgument);
  // A second Serve replaces the first.
  DhcpLease first = FullLease();
  first.address = "10.99.0.77";
  status = server.Serve("pod", server_ns, "dhcps0", first);
  ASSERT_TRUE(status.ok()) << status;
  status = server.Serve("pod", server_ns, "dhcps0", FullLease());
  ASSERT_TRUE(status.ok()) << status;

  const std::string out = dir.path() + "/lease.env";
  const std::string script = dir.path() + "/udhcpc.sh";
  ASSERT_TRUE(WriteFileAtomically(script,
                                  "#!/bin/sh\n"
                                  "[ \"$1\" = bound ] || exit 0\n"
                                  "for v in ip subnet broadcast router dns domain search hostname "
                                  "mtu serverid lease staticroutes opt224; do\n"
                                  "  eval \"echo $v=\\$$v\"\n"
                                  "done > " +
                                      out + "\n",
                                  0755)
                  .ok());
  absl::StatusOr<ProcessResult> udhcpc;
  status = RunInNetns(client_ns, [&]() -> absl::Status {
    udhcpc = RunProcess({"/bin/busybox", "udhcpc", "-f", "-q", "-n", "-t", "5", "-T", "1", "-i",
                         "dhcpc0", "-s", script, "-O", "search", "-O", "staticroutes", "-O", "224"},
                        absl::Seconds(30));
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(udhcpc.ok()) << udhcpc.status();
  ASSERT_EQ(udhcpc->exit_code, 0) << udhcpc->output;

  absl::StatusOr<std::string> env = ReadFile(out);
  ASSERT_TRUE(env.ok()) << env.status() << "\n" << udhcpc->output;
  std::map<std::string, std::string> values;
  std::istringstream lines(*env);
  for (std::string line; std::getline(lines, line);) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  EXPECT_EQ(values["ip"], "10.99.0.5");
  EXPECT_EQ(values["subnet"], "255.255.255.0");
  EXPECT_EQ(values["broadcast"], "10.99.0.255");
  EXPECT_EQ(values["router"], "10.99.0.1");
  EXPECT_EQ(values["dns"], "10.96.0.10 10.96.0.11");
  EXPECT_EQ(values["domain"], "svc.cluster.local");
  EXPECT_EQ(values["search"], "svc.cluster.local cluster.local");
  EXPECT_EQ(values["hostname"], "web-0");
  EXPECT_EQ(values["mtu"], "1450");
  EXPECT_EQ(values["serverid"], "10.99.0.1");
  EXPECT_EQ(values["lease"], "4294967295");
  EXPECT_EQ(values["staticroutes"], "10.96.0.0/12 10.99.0.1 0.0.0.0/0 10.99.0.1");
  // busybox prints options it does not know in hex: "ndots:5 timeout:2".
  EXPECT_EQ(values["opt224"], "6e646f74733a352074696d656f75743a32");
  EXPECT_GE(server.RepliesSent("pod"), 2);  // OFFER and ACK.

  server.Stop("pod");
  EXPECT_EQ(server.RepliesSent("pod"), 0);
  server.Stop("pod");  // A no-op now.
}

}  // namespace
}  // namespace vmlet::network

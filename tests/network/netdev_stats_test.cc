// The /proc/net/dev parser on text fixtures, and ReadInterfaceCounters on a
// veth pair between two network namespaces the test makes (and removes).
#include "network/netdev_stats.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/process.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/netns.h"

namespace vmlet::network {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

constexpr char kHeader[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n";

TEST(ParseNetDevTest, ReadsEveryInterfaceInOrder) {
  const std::string text = StrCat(
      kHeader,
      "    lo:    1234      10    0    0    0     0          0         0     1234      10    0    "
      "0    0     0       0          0\n",
      "  eth0: 98765432  65432    1    2    0     0          0         3 12345678   4321    5    "
      "6    0     0       0          0\n",
      "tap0:18446744073709551615 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n");
  absl::StatusOr<std::vector<InterfaceCounters>> parsed = ParseNetDev(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[0].name, "lo");
  EXPECT_EQ((*parsed)[1], (InterfaceCounters{.name = "eth0",
                                             .rx_bytes = 98765432,
                                             .rx_packets = 65432,
                                             .rx_errors = 1,
                                             .rx_dropped = 2,
                                             .tx_bytes = 12345678,
                                             .tx_packets = 4321,
                                             .tx_errors = 5,
                                             .tx_dropped = 6}));
  // No space after the colon (large counters), and the largest value.
  EXPECT_EQ((*parsed)[2], (InterfaceCounters{.name = "tap0",
                                             .rx_bytes = 18446744073709551615u,
                                             .rx_packets = 1,
                                             .rx_errors = 2,
                                             .rx_dropped = 3,
                                             .tx_bytes = 8,
                                             .tx_packets = 9,
                                             .tx_errors = 10,
                                             .tx_dropped = 11}));
}

TEST(ParseNetDevTest, SkipsMalformedLinesAndKeepsTheOthers) {
  const std::string good = " eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
  const std::vector<std::string> bad = {
      "garbage without a colon\n",
      ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",  // No name.
      "a-name-longer-than-ifnamsiz: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
      "two words: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
      "short: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n",       // 15 columns.
      "long: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n",  // 17 columns.
      "neg: -1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
      "hex: 0x1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
      "word: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16x\n",
      "big: 18446744073709551616 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",  // 2^64.
      "eth0: 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9\n",                           // A name seen before.
      "\n",
      std::string("nul") + '\0' + ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
      "caf\xc3\xa9: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",  // Not printable ASCII.
  };
  std::string text = StrCat(kHeader, good);
  for (const std::string& line : bad) text += line;
  text += "last: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";  // No final newline.
  absl::StatusOr<std::vector<InterfaceCounters>> parsed = ParseNetDev(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed, ElementsAre(Field(&InterfaceCounters::name, "eth0"),
                                   Field(&InterfaceCounters::name, "last")));
  EXPECT_EQ((*parsed)[0].rx_bytes, 1u);
  EXPECT_EQ((*parsed)[0].tx_dropped, 12u);
}

TEST(ParseNetDevTest, RejectsTextWithoutTheHeader) {
  for (const std::string text :
       {"", "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        "Inter-|   Receive\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"}) {
    absl::StatusOr<std::vector<InterfaceCounters>> parsed = ParseNetDev(text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("header"));
  }
  // A header alone: no interfaces.
  absl::StatusOr<std::vector<InterfaceCounters>> empty = ParseNetDev(kHeader);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(ParseNetDevTest, KeepsAtMostTheLimitOfInterfaces) {
  std::string text = kHeader;
  for (size_t i = 0; i < kMaxNetDevInterfaces + 10; ++i) {
    StrAppend(&text, "if", i, ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n");
  }
  absl::StatusOr<std::vector<InterfaceCounters>> parsed = ParseNetDev(text);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->size(), kMaxNetDevInterfaces);
}

// The inode of the calling thread's network namespace.
ino_t ThreadNetns() {
  struct stat st {};
  EXPECT_EQ(::stat("/proc/thread-self/ns/net", &st), 0);
  return st.st_ino;
}

bool HaveIp() {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    if (::access(StrCat(dir, "/ip").c_str(), X_OK) == 0) return true;
  }
  return false;
}

class ReadInterfaceCountersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || !HaveIp()) GTEST_SKIP() << "needs root and ip(8)";
    char dir[] = "/tmp/vmlet-netdev-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    a_ = dir_ + "/a";
    b_ = dir_ + "/b";
    absl::Status made = CreateNetns(a_);
    if (absl::IsPermissionDenied(made)) GTEST_SKIP() << made;
    ASSERT_TRUE(made.ok()) << made;
    ASSERT_TRUE(CreateNetns(b_).ok());
  }

  void TearDown() override {
    // Each namespace takes its end of the veth pair with it.
    if (!a_.empty()) {
      EXPECT_TRUE(RemoveNetns(a_).ok());
    }
    if (!b_.empty()) {
      EXPECT_TRUE(RemoveNetns(b_).ok());
    }
    if (!dir_.empty()) {
      EXPECT_TRUE(RemoveTree(dir_).ok());
    }
  }

  // Runs ip(8) with `args` in the namespace at `netns`.
  absl::Status Ip(const std::string& netns, std::vector<std::string> args) {
    args.insert(args.begin(), "ip");
    return RunInNetns(netns, [&] { return RunProcessOk(args, absl::Seconds(20)); });
  }

  std::string dir_, a_, b_;
};

TEST_F(ReadInterfaceCountersTest, CountsTrafficOnBothEndsOfAVethPair) {
  ASSERT_TRUE(
      Ip(a_, {"link", "add", "eth0", "type", "veth", "peer", "name", "eth1", "netns", b_}).ok());
  ASSERT_TRUE(Ip(a_, {"address", "add", "10.213.0.1/24", "dev", "eth0"}).ok());
  ASSERT_TRUE(Ip(a_, {"link", "set", "eth0", "up"}).ok());
  ASSERT_TRUE(Ip(b_, {"address", "add", "10.213.0.2/24", "dev", "eth1"}).ok());
  ASSERT_TRUE(Ip(b_, {"link", "set", "eth1", "up"}).ok());

  // Ten datagrams from a to b, once the link is up (each attempt also
  // resolves b's address).
  constexpr int kDatagrams = 10;
  constexpr size_t kPayload = 200;
  const ino_t before = ThreadNetns();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::StatusOr<std::vector<InterfaceCounters>> in_b;
  while (true) {
    absl::Status sent = RunInNetns(a_, [&]() -> absl::Status {
      int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return ErrnoToStatus(errno, "socket");
      ScopeGuard close_fd([fd] { ::close(fd); });
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(9);  // discard: nothing listens; b answers with ICMP.
      ::inet_pton(AF_INET, "10.213.0.2", &to.sin_addr);
      const std::string payload(kPayload, 'x');
      for (int i = 0; i < kDatagrams; ++i) {
        if (::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof(to)) < 0) {
          return ErrnoToStatus(errno, "sendto");
        }
      }
      return absl::OkStatus();
    });
    ASSERT_TRUE(sent.ok()) << sent;
    in_b = ReadInterfaceCounters(b_);
    ASSERT_TRUE(in_b.ok()) << in_b.status();
    ASSERT_EQ(in_b->size(), 1u);  // lo is left out.
    if ((*in_b)[0].rx_packets >= kDatagrams || absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(ThreadNetns(), before) << "the thread stayed in the pod's namespace";

  const InterfaceCounters& eth1 = (*in_b)[0];
  EXPECT_EQ(eth1.name, "eth1");
  EXPECT_GE(eth1.rx_packets, static_cast<uint64_t>(kDatagrams));
  EXPECT_GE(eth1.rx_bytes, kDatagrams * kPayload);
  EXPECT_GT(eth1.tx_packets, 0u);  // ARP replies and ICMP port unreachables.
  EXPECT_EQ(eth1.rx_errors, 0u);

  absl::StatusOr<std::vector<InterfaceCounters>> in_a = ReadInterfaceCounters(a_);
  ASSERT_TRUE(in_a.ok()) << in_a.status();
  ASSERT_EQ(in_a->size(), 1u);
  const InterfaceCounters& eth0 = (*in_a)[0];
  EXPECT_EQ(eth0.name, "eth0");
  EXPECT_GE(eth0.tx_packets, eth1.rx_packets);
  EXPECT_GE(eth0.tx_bytes, kDatagrams * kPayload);
  EXPECT_EQ(eth0.rx_packets, eth1.tx_packets);
  EXPECT_EQ(ThreadNetns(), before);
}

TEST_F(ReadInterfaceCountersTest, AFreshNamespaceHasNoInterfaceButLo) {
  absl::StatusOr<std::vector<InterfaceCounters>> counters = ReadInterfaceCounters(a_);
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_TRUE(counters->empty());
}

TEST_F(ReadInterfaceCountersTest, RejectsWhatIsNotANamespaceAndStaysHome) {
  const ino_t before = ThreadNetns();
  absl::StatusOr<std::vector<InterfaceCounters>> missing =
      ReadInterfaceCounters(dir_ + "/no-such-netns");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no-such-netns"));

  const std::string plain = dir_ + "/plain-file";
  ASSERT_TRUE(WriteFileAtomically(plain, "not a namespace").ok());
  absl::StatusOr<std::vector<InterfaceCounters>> not_netns = ReadInterfaceCounters(plain);
  EXPECT_EQ(not_netns.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(not_netns.status().message()), HasSubstr("not a network namespace"));
  EXPECT_EQ(ThreadNetns(), before);
}

}  // namespace
}  // namespace vmlet::network

// Unit tests of UpdateResources' parts that need no libvirt: the checks and
// their messages, host CPU maps, and onlining/offlining guest CPUs against a
// simulated guest agent. The real thing is tests/e2e/vm_resources_test.cc.
#include "vmdriver/libvirt/live_resources.h"

#include <libvirt/libvirt.h>

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/time/clock.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr int64_t kMiB = int64_t{1} << 20;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(CheckVcpuCountTest, AcceptsOneToTheMaximum) {
  EXPECT_TRUE(CheckVcpuCount(1, 2).ok());
  EXPECT_TRUE(CheckVcpuCount(2, 2).ok());
}

TEST(CheckVcpuCountTest, NamesFieldValueAndLimit) {
  absl::Status above = CheckVcpuCount(4, 2);
  EXPECT_EQ(above.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Message(above),
            "vcpus: 4 is more than the 2 vCPUs this VM was started with room for (max_vcpus)");
  absl::Status zero = CheckVcpuCount(0, 2);
  EXPECT_EQ(zero.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Message(zero), "vcpus: 0 is less than 1: expected 1 to 2 (max_vcpus)");
  EXPECT_EQ(CheckVcpuCount(-5, 2).code(), absl::StatusCode::kOutOfRange);
}

TEST(CheckMemorySizeTest, AcceptsSixteenMibToTheMaximum) {
  EXPECT_TRUE(CheckMemorySize(16 * kMiB, 192 * kMiB).ok());
  EXPECT_TRUE(CheckMemorySize(192 * kMiB, 192 * kMiB).ok());
}

TEST(CheckMemorySizeTest, NamesFieldValueAndLimit) {
  absl::Status above = CheckMemorySize(256 * kMiB, 192 * kMiB);
  EXPECT_EQ(above.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Message(above),
            "memory_bytes: 268435456 is more than the 201326592 bytes (192 MiB) this VM was "
            "started with room for (max_memory_bytes)");
  absl::Status below = CheckMemorySize(16 * kMiB - 1, 192 * kMiB);
  EXPECT_EQ(below.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Message(below),
            "memory_bytes: 16777215 is less than 16777216 (16 MiB): expected 16777216 to "
            "201326592 (max_memory_bytes)");
  // A limit that is not whole MiB is given in bytes only.
  EXPECT_THAT(Message(CheckMemorySize(200 * kMiB, 192 * kMiB + 1024)),
              HasSubstr("than the 201327616 bytes this VM"));
}

TEST(CheckCpusetTest, AcceptsOnlineHostCpusAndEmpty) {
  const std::vector<bool> host = {true, true, false, true};
  EXPECT_TRUE(CheckCpuset({}, host).ok());
  EXPECT_TRUE(CheckCpuset({3, 0}, host).ok());
}

TEST(CheckCpusetTest, RejectsCpusTheHostDoesNotHave) {
  const std::vector<bool> host = {true, true, false, true};
  for (int cpu : {2, 4, 1023, -1}) {
    absl::Status status = CheckCpuset({0, cpu}, host);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << cpu;
    EXPECT_EQ(Message(status), "cpuset: CPU " + std::to_string(cpu) +
                                   " is not on this host: expected CPUs 0-1,3 (the host's "
                                   "online CPUs)");
  }
  absl::Status twice = CheckCpuset({1, 0, 1}, host);
  EXPECT_EQ(twice.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(twice), "cpuset: CPU 1 is listed twice: expected each CPU once");
}

TEST(CpuMapTest, ReadsAndWritesLibvirtBitmaps) {
  const unsigned char map[] = {0x0b, 0x01};  // CPUs 0, 1, 3 and 8.
  EXPECT_THAT(CpusOfMap(map, 9),
              ElementsAre(true, true, false, true, false, false, false, false, true));
  EXPECT_TRUE(CpusOfMap(nullptr, 0).empty());
  EXPECT_TRUE(CpusOfMap(map, -1).empty());

  const std::vector<bool> host = CpusOfMap(map, 9);
  EXPECT_THAT(CpuMapOf({3, 8}, host), ElementsAre(0x08, 0x01));
  // Empty: every online host CPU.
  EXPECT_THAT(CpuMapOf({}, host), ElementsAre(0x0b, 0x01));
  // CPUs beyond the host's are left out, never written past the map.
  EXPECT_THAT(CpuMapOf({1, 9, 4000, -2}, host), ElementsAre(0x02, 0x00));
}

TEST(ParseGuestVcpusTest, ReadsTheAgentsList) {
  absl::StatusOr<std::vector<GuestVcpu>> vcpus =
      ParseGuestVcpus(R"({"return":[{"online":false,"can-offline":true,"logical-id":1},)"
                      R"({"online":true,"can-offline":false,"logical-id":0}]})");
  ASSERT_TRUE(vcpus.ok()) << vcpus.status();
  ASSERT_EQ(vcpus->size(), 2u);
  EXPECT_EQ((*vcpus)[0].logical_id, 1);
  EXPECT_FALSE((*vcpus)[0].online);
  EXPECT_TRUE((*vcpus)[0].can_offline);
  EXPECT_EQ((*vcpus)[1].logical_id, 0);
  EXPECT_TRUE((*vcpus)[1].online);
  EXPECT_FALSE((*vcpus)[1].can_offline);
}

TEST(ParseGuestVcpusTest, RejectsWhatIsNotAList) {
  for (const char* reply :
       {"", "null", "[]", R"({"return":{}})", R"({"return":[1]})",
        R"({"return":[{"online":true}]})", R"({"return":[{"logical-id":"0","online":true}]})",
        R"({"return":[{"logical-id":-1,"online":true}]})",
        R"({"return":[{"logical-id":0,"online":"yes"}]})"}) {
    EXPECT_EQ(ParseGuestVcpus(reply).status().code(), absl::StatusCode::kInternal) << reply;
  }
}

// A guest agent over simulated guest CPUs: CPU 0 always online, hot-added
// CPUs show up after `appear_after` guest-get-vcpus calls.
class SimulatedGuest {
 public:
  SimulatedGuest(int cpus, int online, int appear_after = 0)
      : cpus_(cpus), online_(online), appear_after_(appear_after) {}

  AgentCommand Command() {
    return [this](const std::string& command, absl::Duration) -> absl::StatusOr<std::string> {
      ++calls_;
      if (!agent_error_.ok()) return agent_error_;
      Json parsed = Json::parse(command);
      if (parsed["execute"] == "guest-get-vcpus") {
        ++gets_;
        Json list = Json::array();
        const int visible = gets_ > appear_after_ ? cpus_ : std::min(cpus_, visible_before_);
        for (int id = 0; id < visible; ++id) {
          list.push_back({{"logical-id", id}, {"online", id < online_}, {"can-offline", id > 0}});
        }
        return Json{{"return", list}}.dump();
      }
      if (parsed["execute"] == "guest-set-vcpus") {
        sets_.push_back(parsed["arguments"]["vcpus"]);
        if (refusals_ > 0) {
          --refusals_;
          return absl::InternalError("guest-set-vcpus: busy");
        }
        for (const Json& change : parsed["arguments"]["vcpus"]) {
          const int id = change["logical-id"];
          // Onlining and offlining go from the top, as the guest lists them.
          if (change["online"] == true && id == online_) ++online_;
          if (change["online"] == false && id == online_ - 1) --online_;
        }
        return Json{{"return", static_cast<int>(sets_.back().size())}}.dump();
      }
      return absl::InternalError("unknown command");
    };
  }

  int online() const { return online_; }
  int calls() const { return calls_; }
  const std::vector<Json>& sets() const { return sets_; }
  void set_agent_error(absl::Status status) { agent_error_ = std::move(status); }
  void set_visible_before(int cpus) { visible_before_ = cpus; }
  void set_refusals(int refusals) { refusals_ = refusals; }

 private:
  int cpus_;
  int online_;
  int appear_after_;
  int visible_before_ = 1;
  int gets_ = 0;
  int calls_ = 0;
  int refusals_ = 0;
  absl::Status agent_error_;
  std::vector<Json> sets_;
};

TEST(SetGuestOnlineVcpusTest, OnlinesHotAddedCpusOnceTheGuestSeesThem) {
  SimulatedGuest guest(/*cpus=*/3, /*online=*/1, /*appear_after=*/2);
  absl::Status status = SetGuestOnlineVcpus(guest.Command(), 3, absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(guest.online(), 3);
  ASSERT_EQ(guest.sets().size(), 1u);
  EXPECT_EQ(guest.sets()[0], Json::parse(R"([{"logical-id":1,"online":true},)"
                                         R"({"logical-id":2,"online":true}])"));
}

TEST(SetGuestOnlineVcpusTest, OfflinesTheHighestCpusThatMayGo) {
  SimulatedGuest guest(4, 4);
  absl::Status status = SetGuestOnlineVcpus(guest.Command(), 2, absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(guest.online(), 2);
  ASSERT_EQ(guest.sets().size(), 1u);
  EXPECT_EQ(guest.sets()[0], Json::parse(R"([{"logical-id":3,"online":false},)"
                                         R"({"logical-id":2,"online":false}])"));
}

TEST(SetGuestOnlineVcpusTest, DoesNothingWhenTheCountIsRight) {
  SimulatedGuest guest(2, 2);
  ASSERT_TRUE(SetGuestOnlineVcpus(guest.Command(), 2, absl::Seconds(10)).ok());
  EXPECT_TRUE(guest.sets().empty());
  EXPECT_EQ(guest.calls(), 1);
}

TEST(SetGuestOnlineVcpusTest, RetriesARefusal) {
  SimulatedGuest guest(2, 1);
  guest.set_refusals(2);
  absl::Status status = SetGuestOnlineVcpus(guest.Command(), 2, absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(guest.online(), 2);
  EXPECT_EQ(guest.sets().size(), 3u);
}

TEST(SetGuestOnlineVcpusTest, ReturnsTheAgentsErrorAtOnce) {
  SimulatedGuest guest(2, 1);
  guest.set_agent_error(absl::FailedPreconditionError("guest agent is not connected"));
  const absl::Time start = absl::Now();
  absl::Status status = SetGuestOnlineVcpus(guest.Command(), 2, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(guest.calls(), 1);
}

TEST(SetGuestOnlineVcpusTest, GivesUpWhenTheCpuNeverShowsUp) {
  SimulatedGuest guest(/*cpus=*/2, /*online=*/1, /*appear_after=*/1000000);
  const absl::Time start = absl::Now();
  absl::Status status = SetGuestOnlineVcpus(guest.Command(), 2, absl::Milliseconds(600));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Message(status), HasSubstr("the guest has 1 of 1 vCPUs online, not 2"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_TRUE(guest.sets().empty());
}

TEST(SetGuestOnlineVcpusTest, NeverOfflinesTheBootCpu) {
  SimulatedGuest guest(2, 2);
  absl::Status status = SetGuestOnlineVcpus(guest.Command(), 0, absl::Milliseconds(400));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(guest.online(), 1);
}

}  // namespace
}  // namespace vmlet::vmdriver::libvirt

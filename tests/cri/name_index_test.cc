#include "cri/store/name_index.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vmlet::cri::store {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Optional;

constexpr char kName[] = "web_default_uid-web_0";
constexpr char kId[] = "aaaa000000000000000000000000000000000000000000000000000000000001";
constexpr char kOtherId[] = "bbbb000000000000000000000000000000000000000000000000000000000002";

TEST(NameIndexTest, AnUnreservedNameHasNoHolder) {
  NameIndex index;
  EXPECT_EQ(index.Holder(kName), std::nullopt);
}

TEST(NameIndexTest, ReserveMakesTheIdTheHolder) {
  NameIndex index;
  absl::Status status = index.Reserve(kName, kId);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(index.Holder(kName), Optional(std::string(kId)));
}

TEST(NameIndexTest, ReservingANameAgainForItsHolderIsOk) {
  NameIndex index;
  ASSERT_TRUE(index.Reserve(kName, kId).ok());
  absl::Status status = index.Reserve(kName, kId);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(index.Holder(kName), Optional(std::string(kId)));
}

TEST(NameIndexTest, ReserveRefusesANameHeldByAnotherIdNamingTheHolder) {
  NameIndex index;
  ASSERT_TRUE(index.Reserve(kName, kId).ok());
  absl::Status status = index.Reserve(kName, kOtherId);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(std::string(status.message()), AllOf(HasSubstr(std::string("\"") + kName + "\""),
                                                   HasSubstr(std::string("\"") + kId + "\"")));
  EXPECT_THAT(index.Holder(kName), Optional(std::string(kId)));
}

TEST(NameIndexTest, OneIdMayHoldSeveralNames) {
  NameIndex index;
  ASSERT_TRUE(index.Reserve("first", kId).ok());
  ASSERT_TRUE(index.Reserve("second", kId).ok());
  EXPECT_THAT(index.Holder("first"), Optional(std::string(kId)));
  EXPECT_THAT(index.Holder("second"), Optional(std::string(kId)));
}

TEST(NameIndexTest, ReleaseByTheHolderFreesTheNameForAnotherId) {
  NameIndex index;
  ASSERT_TRUE(index.Reserve(kName, kId).ok());
  index.Release(kName, kId);
  EXPECT_EQ(index.Holder(kName), std::nullopt);
  absl::Status status = index.Reserve(kName, kOtherId);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_THAT(index.Holder(kName), Optional(std::string(kOtherId)));
}

TEST(NameIndexTest, ReleaseOnlyFreesTheNameItIsGiven) {
  NameIndex index;
  ASSERT_TRUE(index.Reserve("first", kId).ok());
  ASSERT_TRUE(index.Reserve("second", kId).ok());
  index.Release("first", kId);
  EXPECT_EQ(index.Holder("first"), std::nullopt);
  EXPECT_THAT(index.Holder("second"), Optional(std::string(kId)));
}

TEST(NameIndexTest, ReleaseByANonHolderIsANoOp) {
  NameIndex index;
  ASSERT_TRUE(index.Reserve(kName, kId).ok());
  struct Case {
    std::string name;
    std::string id;
  };
  const std::vector<Case> cases = {
      {kName, kOtherId},      // Another id.
      {kName, ""},            // No id.
      {kName, "aaaa"},        // A prefix of the holder.
      {"unknown-name", kId},  // A name nobody holds.
      {"web_default", kId},   // A prefix of the name.
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + " " + c.id);
    index.Release(c.name, c.id);
    EXPECT_THAT(index.Holder(kName), Optional(std::string(kId)));
    EXPECT_EQ(index.Holder("unknown-name"), std::nullopt);
  }
}

TEST(NameIndexTest, OnlyOneOfManyConcurrentReservationsOfANameSucceeds) {
  constexpr int kThreads = 16;
  NameIndex index;
  std::atomic<int> successes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&index, &successes, t] {
      if (index.Reserve(kName, "id-" + std::to_string(t)).ok()) ++successes;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(successes.load(), 1);
  ASSERT_TRUE(index.Holder(kName).has_value());
  EXPECT_THAT(*index.Holder(kName), HasSubstr("id-"));
}

}  // namespace
}  // namespace vmlet::cri::store

#include "cri/store/record_store.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "tests/cri/cri_test_util.h"
#include "vmlet/state/v1/records.pb.h"

namespace vmlet::cri::store {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::vmlet::state::v1::SandboxRecord;

using SandboxStore = RecordStore<SandboxRecord>;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// A 64-character id that starts with `prefix`.
std::string IdStartingWith(const std::string& prefix) {
  return prefix + std::string(64 - prefix.size(), '0');
}

const std::string kId = IdStartingWith("abc1");
const std::string kSibling = IdStartingWith("abc2");
const std::string kOther = IdStartingWith("de");

SandboxRecord Record(const std::string& id, int64_t created_at = 1) {
  SandboxRecord record;
  record.set_id(id);
  record.set_state(state::v1::SANDBOX_STATE_READY);
  record.set_created_at(created_at);
  record.set_runtime_handler("vm");
  *record.mutable_config() = testing::SandboxConfig("web");
  return record;
}

MATCHER_P(EqualsProto, expected, "") { return MessageDifferencer::Equals(arg, expected); }

class RecordStoreTest : public ::testing::Test {
 protected:
  RecordStoreTest() { Reopen(); }

  // Replaces the store by a new one that loads the same directory, as a
  // restart of vmletd would; returns the warnings of the load.
  std::vector<std::string> Reopen() {
    store_ = std::make_unique<SandboxStore>("sandbox", Dir());
    absl::StatusOr<std::vector<std::string>> warnings = store_->Load();
    EXPECT_TRUE(warnings.ok()) << warnings.status();
    return warnings.ok() ? *warnings : std::vector<std::string>{};
  }

  std::string Dir() const { return dir_.path() + "/sandboxes"; }
  std::string PathOf(const std::string& name) const { return Dir() + "/" + name; }

  std::vector<std::string> FilesInDir() const {
    absl::StatusOr<std::vector<std::string>> names = ListDirectory(Dir());
    EXPECT_TRUE(names.ok()) << names.status();
    return names.ok() ? *names : std::vector<std::string>{};
  }

  void Add(const SandboxRecord& record) {
    absl::Status status = store_->Add(record);
    ASSERT_TRUE(status.ok()) << status;
  }

  testing::TempDir dir_;
  std::unique_ptr<SandboxStore> store_;
};

TEST_F(RecordStoreTest, NamesItsKind) { EXPECT_EQ(store_->kind(), "sandbox"); }

TEST_F(RecordStoreTest, LoadCreatesTheDirectory) {
  EXPECT_THAT(FilesInDir(), IsEmpty());
  EXPECT_EQ(store_->Size(), 0u);
}

TEST_F(RecordStoreTest, GetReturnsWhatAddStored) {
  SandboxRecord record = Record(kId, 42);
  Add(record);
  absl::StatusOr<SandboxRecord> got = store_->Get(kId);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, EqualsProto(record));
  EXPECT_EQ(store_->Size(), 1u);
}

TEST_F(RecordStoreTest, AddWritesOneFilePerRecordThatANewStoreLoads) {
  Add(Record(kId, 1));
  Add(Record(kOther, 2));
  EXPECT_THAT(FilesInDir(), ElementsAre(kId + ".json", kOther + ".json"));

  EXPECT_THAT(Reopen(), IsEmpty());
  EXPECT_EQ(store_->Size(), 2u);
  absl::StatusOr<SandboxRecord> got = store_->Get(kOther);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, EqualsProto(Record(kOther, 2)));
}

TEST_F(RecordStoreTest, AddRefusesATakenIdAndKeepsTheFirstRecord) {
  Add(Record(kId, 1));
  absl::Status status = store_->Add(Record(kId, 2));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_EQ(Message(status), "sandbox \"" + kId + "\" already exists");
  EXPECT_EQ(store_->Get(kId)->created_at(), 1);
  Reopen();
  EXPECT_EQ(store_->Get(kId)->created_at(), 1);
}

TEST_F(RecordStoreTest, GetFindsARecordByAnyPrefixThatOnlyItHas) {
  Add(Record(kId, 1));
  Add(Record(kSibling, 2));
  Add(Record(kOther, 3));
  struct Case {
    std::string id_or_prefix;
    std::string expected_id;
  };
  const std::vector<Case> cases = {
      {kId, kId},    {kSibling, kSibling}, {"abc1", kId},    {"abc2", kSibling},
      {"d", kOther}, {"de0", kOther},      {kOther, kOther},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.id_or_prefix);
    absl::StatusOr<SandboxRecord> got = store_->Get(c.id_or_prefix);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->id(), c.expected_id);
  }
}

TEST_F(RecordStoreTest, GetRefusesAnAmbiguousPrefixNamingTheMatches) {
  Add(Record(kId));
  Add(Record(kSibling));
  for (const std::string prefix : {"a", "ab", "abc"}) {
    SCOPED_TRACE(prefix);
    absl::StatusOr<SandboxRecord> got = store_->Get(prefix);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
    EXPECT_THAT(Message(got.status()),
                AllOf(HasSubstr("\"" + prefix + "\""), HasSubstr("ambiguous"),
                      HasSubstr("\"" + kId + "\""), HasSubstr("\"" + kSibling + "\"")));
  }
}

TEST_F(RecordStoreTest, GetRefusesAnEmptyId) {
  Add(Record(kId));
  absl::StatusOr<SandboxRecord> got = store_->Get("");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  EXPECT_THAT(Message(got.status()), HasSubstr("empty"));
}

TEST_F(RecordStoreTest, GetReturnsNotFoundForAnUnknownId) {
  Add(Record(kId));
  Add(Record(kOther));
  // Before, between and after the stored ids, and longer than a stored id.
  for (const std::string& id :
       {std::string("0"), std::string("abc3"), std::string("f"), IdStartingWith("b"), kId + "0"}) {
    SCOPED_TRACE(id);
    absl::StatusOr<SandboxRecord> got = store_->Get(id);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound) << got.status();
    EXPECT_EQ(Message(got.status()), "sandbox \"" + id + "\" not found");
  }
}

TEST_F(RecordStoreTest, GetOfAnEmptyStoreReturnsNotFound) {
  EXPECT_EQ(store_->Get(kId).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RecordStoreTest, UpdateReturnsStoresAndPersistsTheChange) {
  Add(Record(kId, 1));
  absl::StatusOr<SandboxRecord> updated = store_->Update(kId, [](SandboxRecord& record) {
    record.set_state(state::v1::SANDBOX_STATE_NOTREADY);
    record.set_created_at(7);
    return absl::OkStatus();
  });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->state(), state::v1::SANDBOX_STATE_NOTREADY);
  EXPECT_EQ(updated->created_at(), 7);
  EXPECT_THAT(*store_->Get(kId), EqualsProto(*updated));

  Reopen();
  absl::StatusOr<SandboxRecord> reloaded = store_->Get(kId);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_THAT(*reloaded, EqualsProto(*updated));
}

TEST_F(RecordStoreTest, AFailedUpdateChangesNothing) {
  SandboxRecord original = Record(kId, 1);
  Add(original);
  absl::StatusOr<SandboxRecord> updated = store_->Update(kId, [](SandboxRecord& record) {
    record.set_created_at(99);  // Changed before failing: must not stick.
    return absl::FailedPreconditionError("sandbox is busy");
  });
  EXPECT_EQ(updated.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Message(updated.status()), "sandbox is busy");
  EXPECT_THAT(*store_->Get(kId), EqualsProto(original));
  Reopen();
  EXPECT_THAT(*store_->Get(kId), EqualsProto(original));
}

TEST_F(RecordStoreTest, UpdateRefusesToChangeTheId) {
  SandboxRecord original = Record(kId, 1);
  Add(original);
  absl::StatusOr<SandboxRecord> updated = store_->Update(kId, [](SandboxRecord& record) {
    record.set_id(kOther);
    return absl::OkStatus();
  });
  EXPECT_EQ(updated.status().code(), absl::StatusCode::kInternal) << updated.status();
  EXPECT_THAT(*store_->Get(kId), EqualsProto(original));
  EXPECT_EQ(store_->Get(kOther).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(FilesInDir(), ElementsAre(kId + ".json"));
}

TEST_F(RecordStoreTest, UpdateNeedsAFullKnownId) {
  Add(Record(kId));
  for (const std::string& id : {std::string("abc1"), kOther, std::string()}) {
    SCOPED_TRACE(id);
    bool called = false;
    absl::StatusOr<SandboxRecord> updated = store_->Update(id, [&called](SandboxRecord&) {
      called = true;
      return absl::OkStatus();
    });
    EXPECT_EQ(updated.status().code(), absl::StatusCode::kNotFound) << updated.status();
    EXPECT_FALSE(called);
  }
}

TEST_F(RecordStoreTest, DeleteRemovesTheRecordAndItsFile) {
  Add(Record(kId));
  Add(Record(kOther));
  absl::Status status = store_->Delete(kId);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(store_->Get(kId).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(FilesInDir(), ElementsAre(kOther + ".json"));
  Reopen();
  EXPECT_EQ(store_->Get(kId).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Size(), 1u);
}

TEST_F(RecordStoreTest, DeleteOfAnUnknownIdIsOk) {
  Add(Record(kId));
  EXPECT_TRUE(store_->Delete(kOther).ok());
  EXPECT_TRUE(store_->Delete("").ok());
  // A prefix is not an id: nothing is deleted.
  EXPECT_TRUE(store_->Delete("abc").ok());
  EXPECT_EQ(store_->Size(), 1u);
}

TEST_F(RecordStoreTest, DeleteOfARecordWhoseFileIsAlreadyGoneIsOk) {
  Add(Record(kId));
  ASSERT_TRUE(RemoveFileIfExists(PathOf(kId + ".json")).ok());
  absl::Status status = store_->Delete(kId);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(store_->Size(), 0u);
}

TEST_F(RecordStoreTest, LoadMovesACorruptRecordAsideAndWarnsOnce) {
  Add(Record(kId));
  Add(Record(kOther));
  ASSERT_TRUE(WriteFileAtomically(PathOf(kOther + ".json"), "{ this is not json").ok());

  std::vector<std::string> warnings = Reopen();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], AllOf(HasSubstr(PathOf(kOther + ".json")), HasSubstr("moved aside")));
  EXPECT_EQ(store_->Size(), 1u);
  EXPECT_TRUE(store_->Get(kId).ok());
  EXPECT_EQ(store_->Get(kOther).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(FilesInDir(), ElementsAre(kId + ".json", kOther + ".json.corrupt"));
  absl::StatusOr<std::string> kept = ReadFile(PathOf(kOther + ".json.corrupt"));
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, "{ this is not json");

  // The file moved aside is not looked at again.
  EXPECT_THAT(Reopen(), IsEmpty());
  EXPECT_EQ(store_->Size(), 1u);
}

TEST_F(RecordStoreTest, LoadMovesAsideARecordThatDoesNotHoldTheIdOfItsName) {
  Add(Record(kId));
  // A valid record under the wrong name, and one without any id.
  ASSERT_TRUE(WriteFileAtomically(PathOf(kOther + ".json"), R"({"id": ")" + kId + R"("})").ok());
  ASSERT_TRUE(WriteFileAtomically(PathOf(kSibling + ".json"), R"({"created_at": "5"})").ok());

  std::vector<std::string> warnings = Reopen();
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_THAT(warnings[0], AllOf(HasSubstr(kSibling), HasSubstr("no id")));
  EXPECT_THAT(warnings[1], AllOf(HasSubstr(kOther + ".json"), HasSubstr("\"" + kId + "\"")));
  EXPECT_EQ(store_->Size(), 1u);
  EXPECT_TRUE(store_->Get(kId).ok());
  EXPECT_THAT(FilesInDir(),
              ElementsAre(kId + ".json", kSibling + ".json.corrupt", kOther + ".json.corrupt"));
}

TEST_F(RecordStoreTest, LoadRemovesLeftoverTemporaryFilesAndIgnoresOtherFiles) {
  Add(Record(kId));
  ASSERT_TRUE(WriteFileAtomically(PathOf(kOther + ".json.tmp-0123456789ab"), "{\"id\":").ok());
  ASSERT_TRUE(WriteFileAtomically(PathOf("README"), "not a record").ok());

  EXPECT_THAT(Reopen(), IsEmpty());
  EXPECT_EQ(store_->Size(), 1u);
  EXPECT_THAT(FilesInDir(), ElementsAre("README", kId + ".json"));
}

TEST_F(RecordStoreTest, LoadKeepsFieldsItDoesNotKnow) {
  // A record written by a newer vmletd still loads after a downgrade.
  ASSERT_TRUE(WriteFileAtomically(PathOf(kId + ".json"),
                                  R"({"id": ")" + kId + R"(", "created_at": "3", "future": 1})")
                  .ok());
  EXPECT_THAT(Reopen(), IsEmpty());
  absl::StatusOr<SandboxRecord> got = store_->Get(kId);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->created_at(), 3);
}

TEST_F(RecordStoreTest, ListReturnsTheRecordsThePredicateKeeps) {
  Add(Record(kId, 1));
  Add(Record(kSibling, 2));
  Add(Record(kOther, 3));
  std::vector<SandboxRecord> all = store_->List();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id(), kId);
  EXPECT_EQ(all[1].id(), kSibling);
  EXPECT_EQ(all[2].id(), kOther);

  std::vector<SandboxRecord> kept =
      store_->List([](const SandboxRecord& record) { return record.created_at() >= 2; });
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].id(), kSibling);
  EXPECT_EQ(kept[1].id(), kOther);

  EXPECT_THAT(store_->List([](const SandboxRecord&) { return false; }), IsEmpty());
}

TEST_F(RecordStoreTest, ConcurrentUpdatesOfOneRecordAreNotLost) {
  constexpr int kThreads = 8;
  constexpr int kIncrementsPerThread = 25;
  Add(Record(kId, 0));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrementsPerThread; ++i) {
        absl::StatusOr<SandboxRecord> updated = store_->Update(kId, [](SandboxRecord& record) {
          record.set_created_at(record.created_at() + 1);
          return absl::OkStatus();
        });
        if (!updated.ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->Get(kId)->created_at(), kThreads * kIncrementsPerThread);
  EXPECT_THAT(FilesInDir(), ElementsAre(kId + ".json"));
  Reopen();
  EXPECT_EQ(store_->Get(kId)->created_at(), kThreads * kIncrementsPerThread);
}

}  // namespace
}  // namespace vmlet::cri::store

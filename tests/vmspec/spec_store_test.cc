// SpecStore: persistence across a reopen, the generation rules, corrupt
// files, file-sourced specs and the limits.
#include "vmspec/spec_store.h"

#include <sys/stat.h>

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::vmspec {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::VmSpec Spec(const std::string& ns, const std::string& name, uint32_t vcpus = 2) {
  v1::VmSpec spec;
  spec.mutable_metadata()->set_namespace_(ns);
  spec.mutable_metadata()->set_name(name);
  spec.mutable_spec()->mutable_cpu()->set_count(vcpus);
  spec.mutable_spec()->mutable_memory()->set_size("1Gi");
  return spec;
}

std::string Key(const v1::VmSpec& spec) {
  return spec.metadata().namespace_() + "/" + spec.metadata().name();
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class SpecStoreTest : public ::testing::Test {
 protected:
  SpecStoreTest() { Reopen(); }

  void Reopen(size_t max_specs = 10000) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<SpecStore>> store =
        SpecStore::Open({.dir = dir(), .max_specs = max_specs});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::string dir() const { return tmp_.path() + "/vmspecs"; }

  v1::VmSpec MustApply(const v1::VmSpec& spec, std::string_view source = kApiSource) {
    absl::StatusOr<v1::VmSpec> stored = store_->Apply(spec, source);
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? *stored : v1::VmSpec();
  }

  testing::TempDir tmp_;
  std::unique_ptr<SpecStore> store_;
};

TEST_F(SpecStoreTest, KeepsSpecsAcrossAReopen) {
  v1::VmSpec spec = Spec("default", "web");
  (*spec.mutable_metadata()->mutable_labels())["tier"] = "front";
  v1::VmSpec stored = MustApply(spec);
  EXPECT_EQ(stored.metadata().generation(), 1);
  EXPECT_EQ(stored.metadata().source(), "api");
  EXPECT_GT(stored.metadata().created_at(), 0);
  EXPECT_EQ(stored.metadata().updated_at(), stored.metadata().created_at());
  EXPECT_TRUE(Exists(dir() + "/default/web.json"));

  Reopen();
  absl::StatusOr<v1::VmSpec> loaded = store_->Get("default", "web");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->SerializeAsString(), stored.SerializeAsString());
}

TEST_F(SpecStoreTest, CountsGenerationsOnlyForChanges) {
  v1::VmSpec first = MustApply(Spec("default", "web", 2));
  ASSERT_EQ(first.metadata().generation(), 1);

  // The same spec again, with vmletd's fields filled in by the caller.
  v1::VmSpec same = Spec("default", "web", 2);
  same.mutable_metadata()->set_generation(41);
  same.mutable_metadata()->set_created_at(1);
  same.mutable_metadata()->set_source("/etc/forged.yaml");
  v1::VmSpec again = MustApply(same);
  EXPECT_EQ(again.metadata().generation(), 1);
  EXPECT_EQ(again.metadata().updated_at(), first.metadata().updated_at());
  EXPECT_EQ(again.metadata().created_at(), first.metadata().created_at());
  EXPECT_EQ(again.metadata().source(), "api");

  v1::VmSpec bigger = MustApply(Spec("default", "web", 4));
  EXPECT_EQ(bigger.metadata().generation(), 2);
  EXPECT_EQ(bigger.metadata().created_at(), first.metadata().created_at());
  EXPECT_GE(bigger.metadata().updated_at(), first.metadata().updated_at());

  v1::VmSpec labelled = Spec("default", "web", 4);
  (*labelled.mutable_metadata()->mutable_labels())["team"] = "a";
  EXPECT_EQ(MustApply(labelled).metadata().generation(), 3);

  // A reopen keeps counting from the stored generation.
  Reopen();
  EXPECT_EQ(MustApply(Spec("default", "web", 1)).metadata().generation(), 4);
}

TEST_F(SpecStoreTest, RefusesAnInvalidSpecAndStoresNothing) {
  absl::StatusOr<v1::VmSpec> stored = store_->Apply(Spec("default", "Web_1"));
  EXPECT_EQ(stored.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stored.status().message(), HasSubstr("Web_1"));

  v1::VmSpec bad = Spec("default", "web");
  bad.mutable_spec()->mutable_cpu()->mutable_topology()->set_sockets(3);
  bad.mutable_spec()->mutable_cpu()->mutable_topology()->set_cores(1);
  bad.mutable_spec()->mutable_cpu()->mutable_topology()->set_threads(1);
  EXPECT_EQ(store_->Apply(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store_->List(), IsEmpty());
}

TEST_F(SpecStoreTest, ListsSortedByNamespaceThenNameAndFiltersANamespace) {
  MustApply(Spec("prod", "db"));
  MustApply(Spec("default", "web"));
  MustApply(Spec("default", "api"));
  std::vector<std::string> all;
  for (const v1::VmSpec& spec : store_->List()) all.push_back(Key(spec));
  EXPECT_THAT(all, ElementsAre("default/api", "default/web", "prod/db"));
  std::vector<std::string> prod;
  for (const v1::VmSpec& spec : store_->List("prod")) prod.push_back(Key(spec));
  EXPECT_THAT(prod, ElementsAre("prod/db"));
  EXPECT_THAT(store_->List("nothing-here"), IsEmpty());
}

TEST_F(SpecStoreTest, GetOfAMissingSpecIsNotFoundAndDeleteOfOneIsOk) {
  EXPECT_EQ(store_->Get("default", "web").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Delete("default", "web").ok());
  EXPECT_EQ(store_->Get("default", "../etc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Delete("..", "x").code(), absl::StatusCode::kInvalidArgument);

  MustApply(Spec("default", "web"));
  ASSERT_TRUE(store_->Delete("default", "web").ok());
  EXPECT_EQ(store_->Get("default", "web").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(Exists(dir() + "/default/web.json"));
  Reopen();
  EXPECT_THAT(store_->List(), IsEmpty());
}

TEST_F(SpecStoreTest, MovesACorruptFileAsideAndKeepsTheOthers) {
  MustApply(Spec("default", "good"));
  MustApply(Spec("default", "moved"));
  ASSERT_TRUE(WriteFileAtomically(dir() + "/default/broken.json", "{ not json").ok());
  // A file whose contents name another spec than its path.
  ASSERT_TRUE(RemoveFileIfExists(dir() + "/default/moved.json").ok());
  absl::StatusOr<std::string> good = ReadFile(dir() + "/default/good.json");
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(WriteFileAtomically(dir() + "/default/other.json", *good).ok());
  // Left by a write a crash interrupted.
  ASSERT_TRUE(WriteFileAtomically(dir() + "/default/x.json.tmp-0123", "{").ok());

  Reopen();
  std::vector<std::string> keys;
  for (const v1::VmSpec& spec : store_->List()) keys.push_back(Key(spec));
  EXPECT_THAT(keys, ElementsAre("default/good"));
  EXPECT_TRUE(Exists(dir() + "/default/broken.json.corrupt"));
  EXPECT_FALSE(Exists(dir() + "/default/broken.json"));
  EXPECT_TRUE(Exists(dir() + "/default/other.json.corrupt"));
  EXPECT_FALSE(Exists(dir() + "/default/x.json.tmp-0123"));
  // The next start finds the same.
  Reopen();
  EXPECT_EQ(store_->size(), 1u);
}

TEST_F(SpecStoreTest, ProtectsSpecsFromFilesAgainstTheApi) {
  const std::string file = "/etc/vmlet/vmspecs.d/web.yaml";
  EXPECT_EQ(MustApply(Spec("default", "web"), file).metadata().source(), file);

  absl::StatusOr<v1::VmSpec> applied = store_->Apply(Spec("default", "web", 8));
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(applied.status().message(), HasSubstr(file));
  absl::Status deleted = store_->Delete("default", "web");
  EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(deleted.message(), HasSubstr(file));
  // Nor may another file take it.
  EXPECT_EQ(
      store_->Apply(Spec("default", "web"), "/etc/vmlet/vmspecs.d/other.yaml").status().code(),
      absl::StatusCode::kFailedPrecondition);

  // Its own file may change and delete it.
  EXPECT_EQ(MustApply(Spec("default", "web", 8), file).metadata().generation(), 2);
  ASSERT_TRUE(store_->Delete("default", "web", file).ok());

  // A file takes over a spec of the API, keeping its generation.
  MustApply(Spec("default", "db"));
  v1::VmSpec taken = MustApply(Spec("default", "db"), file);
  EXPECT_EQ(taken.metadata().source(), file);
  EXPECT_EQ(taken.metadata().generation(), 1);
  Reopen();
  EXPECT_EQ(store_->Get("default", "db")->metadata().source(), file);
  auto by_file = store_->FileSourcedKeys();
  ASSERT_EQ(by_file.size(), 1u);
  EXPECT_THAT(by_file[file], ElementsAre(std::pair<std::string, std::string>("default", "db")));
}

TEST_F(SpecStoreTest, RefusesSpecsBeyondTheLimit) {
  Reopen(/*max_specs=*/2);
  MustApply(Spec("default", "a"));
  MustApply(Spec("default", "b"));
  absl::StatusOr<v1::VmSpec> third = store_->Apply(Spec("default", "c"));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  // Changing a stored spec is still fine.
  EXPECT_EQ(MustApply(Spec("default", "a", 4)).metadata().generation(), 2);
}

}  // namespace
}  // namespace vmlet::vmspec

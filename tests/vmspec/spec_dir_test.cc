// SpecDirWatcher: specs from the files of vmspec_dir at start and as files
// are added, changed and removed; bad files; a directory that appears late.
#include "vmspec/spec_dir.h"

#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/str_util.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::vmspec {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string SpecYaml(const std::string& name, int vcpus, const std::string& ns = "default") {
  return StrCat("metadata:\n  namespace: ", ns, "\n  name: ", name,
                "\nspec:\n  cpu:\n    count: ", vcpus, "\n");
}

class SpecDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<SpecStore>> store =
        SpecStore::Open({.dir = tmp_.path() + "/state/vmspecs"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  void TearDown() override { watcher_.reset(); }

  std::string dir() const { return tmp_.path() + "/vmspecs.d"; }
  std::string File(const std::string& name) const { return dir() + "/" + name; }

  void StartWatcher() {
    watcher_.reset();
    absl::StatusOr<std::unique_ptr<SpecDirWatcher>> watcher =
        SpecDirWatcher::Start({.dir = dir(),
                               .debounce = absl::Milliseconds(50),
                               .missing_dir_poll = absl::Milliseconds(100)},
                              store_.get());
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = *std::move(watcher);
  }

  void Write(const std::string& name, const std::string& contents) {
    ASSERT_TRUE(MakeDirs(dir()).ok());
    ASSERT_TRUE(WriteFileAtomically(File(name), contents, 0644).ok());
  }

  // "ns/name:vcpus@source" of every stored spec.
  std::vector<std::string> Specs() const {
    std::vector<std::string> out;
    for (const v1::VmSpec& spec : store_->List()) {
      std::string source = spec.metadata().source();
      if (source.starts_with(dir())) source = source.substr(dir().size() + 1);
      out.push_back(StrCat(spec.metadata().namespace_(), "/", spec.metadata().name(), ":",
                           spec.spec().cpu().count(), "@", source));
    }
    return out;
  }

  // Waits up to 5 s for `done`.
  bool WaitFor(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!done()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

  bool WaitForSpecs(const std::vector<std::string>& expected) {
    return WaitFor([&] { return Specs() == expected; });
  }

  testing::TempDir tmp_;
  std::unique_ptr<SpecStore> store_;
  std::unique_ptr<SpecDirWatcher> watcher_;
};

TEST_F(SpecDirTest, AppliesTheYamlFilesOfTheDirectoryAtStart) {
  Write("a.yaml", SpecYaml("web", 2) + "---\n" + SpecYaml("db", 4, "prod"));
  Write("b.yml", SpecYaml("api", 1));
  Write("c.yaml", "metadata:\n  name: nons\n");  // Of namespace "default".
  Write("notes.txt", SpecYaml("ignored", 1));
  Write(".hidden.yaml", SpecYaml("hidden", 1));
  StartWatcher();
  // Start reads the files before it returns.
  EXPECT_THAT(Specs(), ElementsAre("default/api:1@b.yml", "default/nons:0@c.yaml",
                                   "default/web:2@a.yaml", "prod/db:4@a.yaml"));
}

TEST_F(SpecDirTest, FollowsFilesAsTheyAreAddedChangedAndRemoved) {
  StartWatcher();
  EXPECT_THAT(Specs(), IsEmpty());  // The directory does not exist yet.
  Write("a.yaml", SpecYaml("web", 2));
  ASSERT_TRUE(WaitForSpecs({"default/web:2@a.yaml"})) << ::testing::PrintToString(Specs());

  Write("a.yaml", SpecYaml("web", 4) + "---\n" + SpecYaml("db", 1));
  ASSERT_TRUE(WaitForSpecs({"default/db:1@a.yaml", "default/web:4@a.yaml"}))
      << ::testing::PrintToString(Specs());
  EXPECT_EQ(store_->Get("default", "web")->metadata().generation(), 2);

  // A spec dropped from its file goes; so do the specs of a removed file.
  Write("a.yaml", SpecYaml("web", 4));
  Write("b.yaml", SpecYaml("api", 1));
  ASSERT_TRUE(WaitForSpecs({"default/api:1@b.yaml", "default/web:4@a.yaml"}))
      << ::testing::PrintToString(Specs());
  EXPECT_EQ(store_->Get("default", "web")->metadata().generation(), 2);
  ASSERT_EQ(::unlink(File("a.yaml").c_str()), 0);
  ASSERT_TRUE(WaitForSpecs({"default/api:1@b.yaml"})) << ::testing::PrintToString(Specs());

  // The API may not change what a file says.
  EXPECT_EQ(store_->Apply(store_->Get("default", "api").value()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SpecDirTest, KeepsTheSpecsOfAFileThatTurnsBad) {
  Write("a.yaml", SpecYaml("web", 2));
  StartWatcher();
  ASSERT_THAT(Specs(), ElementsAre("default/web:2@a.yaml"));

  // Not YAML of a spec, then a spec that does not validate: both logged,
  // the earlier spec stays.
  Write("a.yaml", "metadata: [unclosed\n");
  Write("z.yaml", SpecYaml("z", 1));  // A change after the bad one, to wait for.
  ASSERT_TRUE(WaitForSpecs({"default/web:2@a.yaml", "default/z:1@z.yaml"}));
  Write("a.yaml", SpecYaml("web", 8) + "---\n" + SpecYaml("Bad_Name", 1));
  Write("z.yaml", SpecYaml("z", 2));
  ASSERT_TRUE(WaitForSpecs({"default/web:2@a.yaml", "default/z:2@z.yaml"}));
  // The same spec twice in one file is bad too.
  Write("a.yaml", SpecYaml("web", 8) + "---\n" + SpecYaml("web", 6));
  Write("z.yaml", SpecYaml("z", 3));
  ASSERT_TRUE(WaitForSpecs({"default/web:2@a.yaml", "default/z:3@z.yaml"}));

  // Fixed, it is applied.
  Write("a.yaml", SpecYaml("web", 8));
  ASSERT_TRUE(WaitForSpecs({"default/web:8@a.yaml", "default/z:3@z.yaml"}))
      << ::testing::PrintToString(Specs());
}

TEST_F(SpecDirTest, DeletesAtStartTheSpecsOfFilesRemovedMeanwhile) {
  Write("a.yaml", SpecYaml("web", 2));
  Write("b.yaml", SpecYaml("db", 2));
  StartWatcher();
  ASSERT_EQ(Specs().size(), 2u);
  watcher_.reset();
  ASSERT_EQ(::unlink(File("a.yaml").c_str()), 0);
  Write("b.yaml", SpecYaml("db", 3));
  // A spec of the API is none of the directory's business.
  v1::VmSpec api;
  api.mutable_metadata()->set_namespace_("default");
  api.mutable_metadata()->set_name("mine");
  ASSERT_TRUE(store_->Apply(api).ok());

  // The store reopened, as at vmletd's next start.
  store_.reset();
  absl::StatusOr<std::unique_ptr<SpecStore>> store =
      SpecStore::Open({.dir = tmp_.path() + "/state/vmspecs"});
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
  StartWatcher();
  EXPECT_THAT(Specs(), ElementsAre("default/db:3@b.yaml", "default/mine:0@api"));
}

TEST_F(SpecDirTest, ReadsADirectoryThatIsRemovedAndMadeAgain) {
  Write("a.yaml", SpecYaml("web", 2));
  StartWatcher();
  ASSERT_THAT(Specs(), ElementsAre("default/web:2@a.yaml"));
  ASSERT_TRUE(RemoveTree(dir()).ok());
  ASSERT_TRUE(WaitForSpecs({})) << ::testing::PrintToString(Specs());
  Write("b.yaml", SpecYaml("db", 1));
  ASSERT_TRUE(WaitForSpecs({"default/db:1@b.yaml"})) << ::testing::PrintToString(Specs());
}

}  // namespace
}  // namespace vmlet::vmspec

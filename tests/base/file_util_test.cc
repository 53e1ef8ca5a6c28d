#include "base/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/cri/cri_test_util.h"

namespace vmlet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// Permission bits of `path`, or -1 if it cannot be stat'ed.
int ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Runs each test with a known umask so that expected modes do not depend on
// the environment, and restores the previous one afterwards.
class FileUtilTest : public ::testing::Test {
 protected:
  FileUtilTest() : saved_umask_(::umask(022)) {}
  ~FileUtilTest() override { ::umask(saved_umask_); }

  std::string PathOf(const std::string& name) const { return dir_.path() + "/" + name; }

  testing::TempDir dir_;

 private:
  mode_t saved_umask_;
};

TEST_F(FileUtilTest, WriteFileAtomicallyWritesTheContentsWithTheRequestedMode) {
  struct Case {
    std::string name;
    std::string contents;
    mode_t mode;
  };
  const std::vector<Case> cases = {
      {"private", "secret\n", 0600},
      {"shared", "for the group", 0640},
      {"empty", "", 0644},
      // Larger than ReadFile's buffer, so that both loops go round more than once.
      {"large", std::string(100'000, 'x') + "end", 0600},
      {"binary", std::string("a\0b\n\xff", 5), 0600},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = PathOf(c.name);
    absl::Status status = WriteFileAtomically(path, c.contents, c.mode);
    ASSERT_TRUE(status.ok()) << status;
    absl::StatusOr<std::string> read = ReadFile(path);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(*read, c.contents);
    EXPECT_EQ(ModeOf(path), static_cast<int>(c.mode));
  }
}

TEST_F(FileUtilTest, WriteFileAtomicallyMakesFilesPrivateByDefault) {
  std::string path = PathOf("record");
  ASSERT_TRUE(WriteFileAtomically(path, "x").ok());
  EXPECT_EQ(ModeOf(path), 0600);
}

TEST_F(FileUtilTest, WriteFileAtomicallyReplacesAnExistingFile) {
  std::string path = PathOf("record");
  ASSERT_TRUE(WriteFileAtomically(path, "the old contents, which are longer", 0644).ok());
  absl::Status status = WriteFileAtomically(path, "new", 0600);
  ASSERT_TRUE(status.ok()) << status;
  absl::StatusOr<std::string> read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "new");
  EXPECT_EQ(ModeOf(path), 0600);
}

TEST_F(FileUtilTest, WriteFileAtomicallyLeavesNoTemporaryFilesBehind) {
  ASSERT_TRUE(WriteFileAtomically(PathOf("a"), "1").ok());
  ASSERT_TRUE(WriteFileAtomically(PathOf("a"), "2").ok());
  ASSERT_TRUE(WriteFileAtomically(PathOf("b"), "3").ok());
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_.path());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("a", "b"));
}

TEST_F(FileUtilTest, WriteFileAtomicallyIntoAMissingDirectoryFailsAndCreatesNothing) {
  std::string path = PathOf("missing/record");
  absl::Status status = WriteFileAtomically(path, "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(Message(status), HasSubstr(path));
  EXPECT_FALSE(Exists(PathOf("missing")));
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_.path());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, IsEmpty());
}

TEST_F(FileUtilTest, WriteFileAtomicallyOverADirectoryFailsAndLeavesNoTemporaryFile) {
  ASSERT_TRUE(MakeDirs(PathOf("dir")).ok());
  absl::Status status = WriteFileAtomically(PathOf("dir"), "x");
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(IsDirectory(PathOf("dir")));
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_.path());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("dir"));
}

TEST_F(FileUtilTest, ReadFileReturnsNotFoundNamingTheMissingFile) {
  std::string path = PathOf("nothing-here");
  absl::StatusOr<std::string> read = ReadFile(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound) << read.status();
  EXPECT_THAT(Message(read.status()), HasSubstr("\"" + path + "\""));
}

TEST_F(FileUtilTest, MakeDirsCreatesEveryMissingLevel) {
  const std::vector<std::string> cases = {"one", "a/b/c", "x/y/", "deep/1/2/3/4/5"};
  for (const std::string& relative : cases) {
    SCOPED_TRACE(relative);
    std::string path = PathOf(relative);
    absl::Status status = MakeDirs(path);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_TRUE(IsDirectory(path));
  }
}

TEST_F(FileUtilTest, MakeDirsAppliesTheModeToTheDirectoriesItCreates) {
  ASSERT_TRUE(MakeDirs(PathOf("a/b"), 0700).ok());
  EXPECT_EQ(ModeOf(PathOf("a")), 0700);
  EXPECT_EQ(ModeOf(PathOf("a/b")), 0700);
}

TEST_F(FileUtilTest, MakeDirsOfAnExistingDirectoryIsOkAndKeepsItsContents) {
  std::string path = PathOf("a/b");
  ASSERT_TRUE(MakeDirs(path).ok());
  ASSERT_TRUE(WriteFileAtomically(path + "/file", "kept").ok());
  absl::Status status = MakeDirs(path);
  ASSERT_TRUE(status.ok()) << status;
  absl::StatusOr<std::string> read = ReadFile(path + "/file");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "kept");
}

TEST_F(FileUtilTest, MakeDirsReturnsFailedPreconditionWhenAFileIsInTheWay) {
  std::string path = PathOf("file");
  ASSERT_TRUE(WriteFileAtomically(path, "not a directory").ok());
  absl::Status status = MakeDirs(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Message(status), HasSubstr("\"" + path + "\""));
}

TEST_F(FileUtilTest, MakeDirsFailsWhenAFileIsInTheWayOfAParent) {
  ASSERT_TRUE(WriteFileAtomically(PathOf("file"), "not a directory").ok());
  absl::Status status = MakeDirs(PathOf("file/child"));
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(Message(status), HasSubstr(PathOf("file/child")));
}

TEST_F(FileUtilTest, MakeDirsRefusesAnEmptyPath) {
  EXPECT_EQ(MakeDirs("").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FileUtilTest, RemoveFileIfExistsRemovesAFile) {
  std::string path = PathOf("file");
  ASSERT_TRUE(WriteFileAtomically(path, "x").ok());
  absl::Status status = RemoveFileIfExists(path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(Exists(path));
}

TEST_F(FileUtilTest, RemovingMissingPathsIsOk) {
  EXPECT_TRUE(RemoveFileIfExists(PathOf("missing")).ok());
  EXPECT_TRUE(RemoveFileIfExists(PathOf("missing-dir/missing")).ok());
  EXPECT_TRUE(RemoveTree(PathOf("missing")).ok());
  EXPECT_TRUE(RemoveTree(PathOf("missing-dir/missing")).ok());
}

TEST_F(FileUtilTest, RemoveTreeRemovesADirectoryAndEverythingInIt) {
  ASSERT_TRUE(MakeDirs(PathOf("tree/a/b")).ok());
  ASSERT_TRUE(WriteFileAtomically(PathOf("tree/top"), "1").ok());
  ASSERT_TRUE(WriteFileAtomically(PathOf("tree/a/b/leaf"), "2").ok());
  ASSERT_TRUE(WriteFileAtomically(PathOf("sibling"), "3").ok());
  absl::Status status = RemoveTree(PathOf("tree"));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(Exists(PathOf("tree")));
  EXPECT_TRUE(Exists(PathOf("sibling")));
}

TEST_F(FileUtilTest, ListDirectoryReturnsSortedNamesWithoutDotEntries) {
  for (const char* name : {"zeta", "alpha", "Beta", "mid.json", "_under"}) {
    ASSERT_TRUE(WriteFileAtomically(PathOf(name), "x").ok());
  }
  ASSERT_TRUE(MakeDirs(PathOf("dir")).ok());
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_.path());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("Beta", "_under", "alpha", "dir", "mid.json", "zeta"));
}

TEST_F(FileUtilTest, ListDirectoryOfAnEmptyDirectoryIsEmpty) {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_.path());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, IsEmpty());
}

TEST_F(FileUtilTest, ListDirectoryReturnsNotFoundForAMissingDirectory) {
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(PathOf("missing"));
  EXPECT_EQ(names.status().code(), absl::StatusCode::kNotFound) << names.status();
  EXPECT_THAT(Message(names.status()), HasSubstr(PathOf("missing")));
}

}  // namespace
}  // namespace vmlet

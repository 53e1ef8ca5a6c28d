// The image store without a network: imports, names, tag moves, removal of
// images in use, persistence across reopening, and clean-up of leftovers.
// Pulls are tested end to end against a real registry (e2e_image_pull).
#include "image/image_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/str_util.h"
#include "image/digest.h"

namespace vmlet::image {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vmlet-image-store-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    Open();
  }
  void TearDown() override {
    store_.reset();
    (void)RemoveTree(dir_);
  }

  void Open() {
    store_.reset();
    auto store =
        ImageStore::Open({.dir = dir_ + "/images", .in_use = [this](const std::string& id) {
                            return in_use_.contains(id);
                          }});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // A raw disk file whose content is `fill`.
  std::string Disk(const std::string& name, char fill, size_t size = 8192) {
    std::string path = StrCat(dir_, "/", name);
    EXPECT_TRUE(WriteFileAtomically(path, std::string(size, fill), 0644).ok());
    return path;
  }

  std::string dir_;
  std::set<std::string> in_use_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ImageStoreTest, ImportsADiskAndFindsItByEveryName) {
  const std::string disk = Disk("a.raw", 'a');
  absl::StatusOr<std::string> id = store_->Import(disk, "vms/a:1");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, *Sha256OfFile(disk)) << "a disk's id is its content digest";

  for (const std::string& name :
       {std::string("vms/a:1"), std::string("docker.io/vms/a:1"), *id, id->substr(7)}) {
    std::optional<StoredImage> found = store_->Find(name);
    ASSERT_TRUE(found.has_value()) << name;
    EXPECT_EQ(found->id, *id);
  }
  EXPECT_FALSE(store_->Find("vms/a:2").has_value());
  EXPECT_FALSE(store_->Find("vms/a").has_value()) << ":latest is another tag";

  std::optional<StoredImage> image = store_->Find("vms/a:1");
  EXPECT_THAT(image->repo_tags, ElementsAre("docker.io/vms/a:1"));
  EXPECT_EQ(image->layout, LayoutKind::kDisk);
  EXPECT_EQ(image->source, "import");
  // The stored disk is read-only and holds the same bytes.
  const std::string stored = image->rootfs + "/disk/root.raw";
  struct stat st;
  ASSERT_EQ(::stat(stored.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u);
  EXPECT_EQ(*Sha256OfFile(stored), *id);
  EXPECT_GT(store_->Usage().bytes, 0u);
}

TEST_F(ImageStoreTest, ZerosStaySparse) {
  const std::string path = dir_ + "/sparse.raw";
  std::string data(4 << 20, '\0');
  data[0] = 'x';  // One block of data, the rest zeros.
  ASSERT_TRUE(WriteFileAtomically(path, data, 0644).ok());
  absl::StatusOr<std::string> id = store_->Import(path, "vms/sparse:1");
  ASSERT_TRUE(id.ok()) << id.status();
  struct stat st;
  ASSERT_EQ(::stat((store_->Find(*id)->rootfs + "/disk/root.raw").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4 << 20);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the zeros were written out";
}

TEST_F(ImageStoreTest, ATagMovesToTheNewestImageAndSurvivesReopening) {
  absl::StatusOr<std::string> a = store_->Import(Disk("a.raw", 'a'), "vms/x:1");
  absl::StatusOr<std::string> b = store_->Import(Disk("b.raw", 'b'), "vms/x:1");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(store_->Find("vms/x:1")->id, *b);
  EXPECT_THAT(store_->Find(*a)->repo_tags, IsEmpty());
  // Importing the same content again only adds a name.
  absl::StatusOr<std::string> again = store_->Import(Disk("a2.raw", 'a'), "vms/y:1");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *a);
  EXPECT_EQ(store_->List().size(), 2u);

  Open();
  EXPECT_EQ(store_->List().size(), 2u);
  EXPECT_EQ(store_->Find("vms/x:1")->id, *b);
  EXPECT_EQ(store_->Find("vms/y:1")->id, *a);
}

TEST_F(ImageStoreTest, RemovalWaitsForTheLastContainer) {
  absl::StatusOr<std::string> id = store_->Import(Disk("a.raw", 'a'), "vms/a:1");
  ASSERT_TRUE(id.ok());
  const std::string image_dir = StrCat(dir_, "/images/sha256/", id->substr(7));
  in_use_.insert(*id);
  ASSERT_TRUE(store_->Remove("vms/a:1").ok());
  EXPECT_FALSE(store_->Find("vms/a:1").has_value());
  EXPECT_FALSE(store_->Find(*id).has_value());
  EXPECT_THAT(store_->List(), IsEmpty());
  EXPECT_EQ(::access(image_dir.c_str(), F_OK), 0) << "deleted while in use";
  store_->Collect();
  EXPECT_EQ(::access(image_dir.c_str(), F_OK), 0);

  Open();  // Still hidden, still kept.
  EXPECT_THAT(store_->List(), IsEmpty());
  EXPECT_EQ(::access(image_dir.c_str(), F_OK), 0);

  in_use_.clear();
  store_->Collect();
  EXPECT_NE(::access(image_dir.c_str(), F_OK), 0);
  EXPECT_TRUE(store_->Remove("vms/a:1").ok()) << "removing an absent image succeeds";
}

TEST_F(ImageStoreTest, OpenRemovesLeftoversAndBrokenImages) {
  ASSERT_TRUE(store_->Import(Disk("a.raw", 'a'), "vms/a:1").ok());
  store_.reset();
  ASSERT_TRUE(MakeDirs(dir_ + "/images/tmp/interrupted/rootfs", 0755).ok());
  const std::string broken = dir_ + "/images/sha256/" + std::string(64, 'e');
  ASSERT_TRUE(MakeDirs(broken + "/rootfs", 0755).ok());
  ASSERT_TRUE(WriteFileAtomically(broken + "/image.json", "{not json", 0644).ok());
  Open();
  EXPECT_THAT(*ListDirectory(dir_ + "/images/tmp"), IsEmpty());
  EXPECT_NE(::access(broken.c_str(), F_OK), 0);
  EXPECT_EQ(store_->List().size(), 1u);
}

TEST_F(ImageStoreTest, RefusesBadImports) {
  absl::StatusOr<std::string> id = store_->Import(dir_ + "/missing.qcow2", "vms/a:1");
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound) << id.status();
  EXPECT_THAT(std::string(id.status().message()), ::testing::HasSubstr("missing.qcow2"));
  id = store_->Import(dir_, "vms/a:1");
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
  id = store_->Import(Disk("a.raw", 'a'), "Bad Name");
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
  EXPECT_THAT(*ListDirectory(dir_ + "/images/tmp"), IsEmpty());
  EXPECT_THAT(*ListDirectory(dir_ + "/images/sha256"), IsEmpty());
}

TEST_F(ImageStoreTest, LocalImagesArePinned) {
  const std::string layout = dir_ + "/local";
  ASSERT_TRUE(MakeDirs(layout + "/disk", 0755).ok());
  ASSERT_TRUE(WriteFileAtomically(layout + "/disk/root.raw", std::string(4096, 'l'), 0644).ok());
  store_.reset();
  auto store =
      ImageStore::Open({.dir = dir_ + "/images", .local_images = {{"vmlet.local/demo:1", layout}}});
  ASSERT_TRUE(store.ok()) << store.status();
  std::optional<StoredImage> image = (*store)->Find("vmlet.local/demo:1");
  ASSERT_TRUE(image.has_value());
  EXPECT_TRUE(image->pinned);
  EXPECT_EQ((*store)->Remove("vmlet.local/demo:1").code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<std::string> pulled = (*store)->Pull("vmlet.local/demo:1", {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(*pulled, image->id);
}

}  // namespace
}  // namespace vmlet::image

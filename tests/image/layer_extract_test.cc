// Layer extraction: archives made here with libarchive (or GNU tar for
// sparse files), fed through a pipe as the image store does.
#include "image/layer_extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/process.h"
#include "base/str_util.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::image {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr size_t kMiB = size_t{1} << 20;

struct TarEntry {
  std::string path;
  mode_t type = AE_IFREG;
  std::string data;  // A regular file's contents.
  int perm = 0644;
  std::string symlink;   // A symlink's target.
  std::string hardlink;  // Makes the entry a hard link to this path.
};

TarEntry File(std::string path, std::string data, int perm = 0644) {
  return {.path = std::move(path), .data = std::move(data), .perm = perm};
}
TarEntry Dir(std::string path, int perm = 0755) {
  return {.path = std::move(path), .type = AE_IFDIR, .perm = perm};
}
TarEntry Symlink(std::string path, std::string target) {
  return {.path = std::move(path), .type = AE_IFLNK, .perm = 0777, .symlink = std::move(target)};
}
TarEntry HardLink(std::string path, std::string target) {
  return {.path = std::move(path), .hardlink = std::move(target)};
}

la_ssize_t AppendToString(struct archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

// A pax tar of the entries, compressed with `filter` ("none", "gzip", "zstd").
// An uncompressed pax tar of the entries. Paths are UTF-8 and written as
// pax records (as Go's archive/tar does); the extractor reads them in the
// "C" locale, as vmletd runs.
std::string MakeTar(const std::vector<TarEntry>& entries) {
  locale_t utf8 = ::newlocale(LC_ALL_MASK, "C.UTF-8", nullptr);
  EXPECT_NE(utf8, locale_t{});
  locale_t previous = ::uselocale(utf8);
  struct archive* archive = archive_write_new();
  archive_write_set_format_pax_restricted(archive);
  std::string out;
  EXPECT_EQ(archive_write_open(archive, &out, nullptr, AppendToString, nullptr), ARCHIVE_OK)
      << archive_error_string(archive);
  for (const TarEntry& e : entries) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.perm);
    if (!e.hardlink.empty()) archive_entry_set_hardlink(entry, e.hardlink.c_str());
    if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.symlink.c_str());
    if (e.type == AE_IFREG && e.hardlink.empty()) archive_entry_set_size(entry, e.data.size());
    EXPECT_EQ(archive_write_header(archive, entry), ARCHIVE_OK) << archive_error_string(archive);
    if (!e.data.empty()) archive_write_data(archive, e.data.data(), e.data.size());
    archive_entry_free(entry);
  }
  archive_write_close(archive);
  archive_write_free(archive);
  ::uselocale(previous);
  ::freelocale(utf8);
  return out;
}

// `bytes` compressed with `filter` ("none", "gzip" or "zstd"), nothing
// after the compressed stream (as in a registry's blob).
std::string Compress(const std::string& bytes, const std::string& filter) {
  if (filter == "none") return bytes;
  struct archive* archive = archive_write_new();
  archive_write_set_format_raw(archive);
  if (filter == "gzip") archive_write_add_filter_gzip(archive);
  if (filter == "zstd") archive_write_add_filter_zstd(archive);
  archive_write_set_bytes_in_last_block(archive, 1);
  std::string out;
  EXPECT_EQ(archive_write_open(archive, &out, nullptr, AppendToString, nullptr), ARCHIVE_OK)
      << archive_error_string(archive);
  struct archive_entry* entry = archive_entry_new();
  archive_entry_set_pathname(entry, "data");
  archive_entry_set_filetype(entry, AE_IFREG);
  archive_entry_set_size(entry, bytes.size());
  EXPECT_EQ(archive_write_header(archive, entry), ARCHIVE_OK) << archive_error_string(archive);
  archive_write_data(archive, bytes.data(), bytes.size());
  archive_entry_free(entry);
  archive_write_close(archive);
  archive_write_free(archive);
  return out;
}

struct Extracted {
  absl::StatusOr<ExtractStats> stats;
  bool writer_finished = false;  // The whole stream, padding included, was consumed.
};

// Feeds `bytes` and then `padding` zero bytes through a pipe to ExtractLayer.
Extracted Extract(const std::string& bytes, const std::string& root, size_t padding = 0,
                  const std::atomic<bool>* cancelled = nullptr) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  bool writer_finished = false;
  std::thread writer([&] {
    const std::string zeros(64 * 1024, '\0');
    auto write_all = [&](const char* data, size_t size) {
      while (size > 0) {
        ssize_t n = ::write(fds[1], data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        size -= static_cast<size_t>(n);
      }
      return true;
    };
    bool ok = write_all(bytes.data(), bytes.size());
    for (size_t left = padding; ok && left > 0;) {
      size_t n = std::min(left, zeros.size());
      ok = write_all(zeros.data(), n);
      left -= n;
    }
    writer_finished = ok;
    ::close(fds[1]);
  });
  Extracted result{.stats = ExtractLayer(fds[0], root, cancelled)};
  ::close(fds[0]);  // A writer still writing gets EPIPE.
  writer.join();
  result.writer_finished = writer_finished;
  return result;
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

class LayerExtractTest : public ::testing::Test {
 protected:
  // The image root is inside the test directory, so that anything written
  // beside it (an escape) shows.
  std::string root() const { return dir_.path() + "/root"; }
  std::string At(const std::string& relative) const { return root() + "/" + relative; }

  absl::StatusOr<ExtractStats> Apply(const std::vector<TarEntry>& entries) {
    Extracted extracted = Extract(MakeTar(entries), root());
    if (extracted.stats.ok()) {
      EXPECT_TRUE(extracted.writer_finished);
    }
    return extracted.stats;
  }

  bool Exists(const std::string& relative) const {
    struct stat st;
    return ::lstat(At(relative).c_str(), &st) == 0;
  }
  mode_t Mode(const std::string& relative) const {
    struct stat st;
    EXPECT_EQ(::lstat(At(relative).c_str(), &st), 0) << relative;
    return st.st_mode;
  }
  std::string Read(const std::string& relative) const {
    absl::StatusOr<std::string> data = ReadFile(At(relative));
    EXPECT_TRUE(data.ok()) << data.status();
    return data.ok() ? *data : "";
  }
  std::string LinkTarget(const std::string& relative) const {
    char buf[4096];
    ssize_t n = ::readlink(At(relative).c_str(), buf, sizeof(buf));
    return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
  }
  // Nothing but the root was written in the test directory.
  void ExpectNothingOutsideRoot() {
    absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_.path());
    ASSERT_TRUE(names.ok());
    EXPECT_THAT(*names, ElementsAre("outside", "root"));
    EXPECT_THAT(*ListDirectory(dir_.path() + "/outside"), IsEmpty());
  }

  void SetUp() override { ASSERT_TRUE(MakeDirs(dir_.path() + "/outside").ok()); }

  vmlet::testing::TempDir dir_;
};

TEST_F(LayerExtractTest, ExtractsFilesDirectoriesAndLinksWithSafeModes) {
  const std::string long_dir(150, 'd');  // Beyond ustar's 100 bytes: a pax path.
  absl::StatusOr<ExtractStats> stats = Apply({
      Dir("etc", 0700),
      File("etc/hostname", "vm\n"),
      File("./bin/tool", "#!/bin/sh\n", 04755),  // Parent made implicitly; setuid dropped.
      File("tmp-file", "t", 01666),              // The sticky bit stays.
      Symlink("etc/alias", "hostname"),
      Symlink("bin/up", "../etc/hostname"),
      HardLink("etc/hostname-again", "etc/hostname"),
      File(long_dir + "/f\xc3\xbcr", "long"),
  });
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 7u);
  EXPECT_EQ(stats->bytes, 3u + 10u + 1u + 4u);
  EXPECT_EQ(stats->skipped, 0u);
  EXPECT_EQ(Mode("etc") & 07777, 0755u);
  EXPECT_EQ(Mode("bin") & 07777, 0755u);
  EXPECT_EQ(Read("etc/hostname"), "vm\n");
  EXPECT_EQ(Mode("etc/hostname") & 07777, 0644u);
  EXPECT_EQ(Mode("bin/tool") & 07777, 0755u);
  EXPECT_EQ(Mode("tmp-file") & 07777, 01666u);
  EXPECT_EQ(LinkTarget("etc/alias"), "hostname");
  EXPECT_EQ(Read("bin/up"), "vm\n");
  struct stat a, b;
  ASSERT_EQ(::stat(At("etc/hostname").c_str(), &a), 0);
  ASSERT_EQ(::stat(At("etc/hostname-again").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(Read(long_dir + "/f\xc3\xbcr"), "long");
}

class LayerCompressionTest : public LayerExtractTest,
                             public ::testing::WithParamInterface<const char*> {};

// Also shows that Debian's libarchive13 reads zstd in-process.
TEST_P(LayerCompressionTest, ACompressedLayerIsDetectedAndItsPaddingDrained) {
  std::string big(3 * kMiB, 'x');
  // 4 MiB of zeros after the end-of-archive marker (a large tar record):
  // uncompressed, more than a pipe holds.
  const std::string tar =
      MakeTar({File("a", "alpha"), File("big", big)}) + std::string(4 * kMiB, '\0');
  Extracted extracted = Extract(Compress(tar, GetParam()), root());
  ASSERT_TRUE(extracted.stats.ok()) << extracted.stats.status();
  EXPECT_TRUE(extracted.writer_finished) << "the rest of the stream was not read";
  EXPECT_EQ(extracted.stats->files, 2u);
  EXPECT_EQ(Read("a"), "alpha");
  EXPECT_TRUE(Read("big") == big);
}

INSTANTIATE_TEST_SUITE_P(Filters, LayerCompressionTest, ::testing::Values("none", "gzip", "zstd"));

TEST_F(LayerExtractTest, WhiteoutsDeleteWhatEarlierLayersLeft) {
  ASSERT_TRUE(Apply({File("a/x", "x"), File("a/y", "y"), File("b/z", "z"), File("d/old", "o"),
                     File("d/sub/old", "o"), File("keep", "k")})
                  .ok());
  absl::StatusOr<ExtractStats> stats = Apply({
      File("a/.wh.x", ""),
      File(".wh.b", ""),
      File("d/sub/new", "n"),  // Before the opaque marker: this layer's, kept.
      File("d/.wh..wh..opq", ""),
      File("d/after", "a"),
      File("keep2", "k"),
      File(".wh.keep2", ""),  // Same layer: not hidden.
      File(".wh.absent", ""),
      File("nowhere/.wh.x", ""),
  });
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 3u);
  EXPECT_FALSE(Exists("a/x"));
  EXPECT_TRUE(Exists("a/y"));
  EXPECT_FALSE(Exists("b"));
  EXPECT_THAT(*ListDirectory(At("d")), ElementsAre("after", "sub"));
  EXPECT_THAT(*ListDirectory(At("d/sub")), ElementsAre("new"));
  EXPECT_TRUE(Exists("keep"));
  EXPECT_TRUE(Exists("keep2"));
  EXPECT_FALSE(Exists("a/.wh.x"));
  EXPECT_FALSE(Exists("d/.wh..wh..opq"));
  EXPECT_FALSE(Exists("nowhere"));
}

TEST_F(LayerExtractTest, ALaterEntryReplacesWhatIsThereWithoutWritingThroughIt) {
  ASSERT_TRUE(Apply({File("target", "original"), Symlink("link", "target"), File("x/inner", "i"),
                     File("file", "f")})
                  .ok());
  ASSERT_TRUE(Apply({File("link", "new"), File("x", "now a file"), Dir("file")}).ok());
  EXPECT_EQ(Read("target"), "original");
  EXPECT_TRUE(S_ISREG(Mode("link")));
  EXPECT_EQ(Read("link"), "new");
  EXPECT_EQ(Read("x"), "now a file");
  EXPECT_TRUE(S_ISDIR(Mode("file")));
}

TEST_F(LayerExtractTest, DevicesAndFifosAreSkippedAndCounted) {
  absl::StatusOr<ExtractStats> stats = Apply({{.path = "dev/null", .type = AE_IFCHR, .perm = 0666},
                                              {.path = "dev/sda", .type = AE_IFBLK, .perm = 0660},
                                              {.path = "fifo", .type = AE_IFIFO, .perm = 0644},
                                              File("ok", "ok")});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->skipped, 3u);
  EXPECT_EQ(stats->files, 1u);
  EXPECT_FALSE(Exists("dev/null"));
  EXPECT_FALSE(Exists("fifo"));
}

struct RefusedCase {
  const char* name;
  std::vector<TarEntry> entries;
  absl::StatusCode code;
  const char* message;
};

class LayerRefusalTest : public LayerExtractTest,
                         public ::testing::WithParamInterface<RefusedCase> {};

TEST_P(LayerRefusalTest, IsRefusedNamingTheEntry) {
  const RefusedCase& param = GetParam();
  absl::StatusOr<ExtractStats> stats = Apply(param.entries);
  EXPECT_EQ(stats.status().code(), param.code) << stats.status();
  EXPECT_THAT(Message(stats.status()), HasSubstr(param.message));
  ExpectNothingOutsideRoot();
}

INSTANTIATE_TEST_SUITE_P(
    Unsafe, LayerRefusalTest,
    ::testing::Values(
        RefusedCase{"AbsolutePath",
                    {File("/outside/f", "x")},
                    absl::StatusCode::kInvalidArgument,
                    "layer entry \"/outside/f\": absolute paths are not allowed"},
        RefusedCase{"DotDot",
                    {File("a/../../outside/f", "x")},
                    absl::StatusCode::kInvalidArgument,
                    "layer entry \"a/../../outside/f\": \"..\" components"},
        RefusedCase{"AbsoluteSymlink",
                    {Symlink("disk/root.img", "/etc/shadow")},
                    absl::StatusCode::kInvalidArgument,
                    "layer entry \"disk/root.img\": symlink target \"/etc/shadow\" is absolute"},
        RefusedCase{"EscapingSymlink",
                    {Symlink("a/b/l", "../../../outside")},
                    absl::StatusCode::kInvalidArgument,
                    "symlink target \"../../../outside\" escapes the image root"},
        // "s" is the root, so "s/s/.." would be the root's parent.
        RefusedCase{"DotDotAfterAName",
                    {Symlink("s", "."), Symlink("t", "s/s/../outside")},
                    absl::StatusCode::kInvalidArgument,
                    "layer entry \"t\": symlink target \"s/s/../outside\" has \"..\" after a name"},
        RefusedCase{"AbsoluteHardLink",
                    {HardLink("h", "/etc/passwd")},
                    absl::StatusCode::kInvalidArgument,
                    "hard link target \"/etc/passwd\": absolute paths"},
        RefusedCase{"DotDotHardLink",
                    {HardLink("h", "../outside/x")},
                    absl::StatusCode::kInvalidArgument,
                    "hard link target \"../outside/x\": \"..\" components"},
        RefusedCase{"AbsentHardLinkTarget",
                    {HardLink("h", "missing")},
                    absl::StatusCode::kFailedPrecondition,
                    "layer entry \"h\": hard link target \"missing\" does not exist"},
        RefusedCase{"HardLinkThroughASymlink",
                    {File("d/f", "x"), Symlink("l", "d"), HardLink("h", "l/f")},
                    absl::StatusCode::kFailedPrecondition,
                    "would be written through the symlink \"l\""},
        RefusedCase{"WriteThroughASymlink",
                    {Dir("d"), Symlink("l", "d"), File("l/f", "x")},
                    absl::StatusCode::kFailedPrecondition,
                    "layer entry \"l/f\": would be written through the symlink \"l\""},
        RefusedCase{"WhiteoutThroughASymlink",
                    {Dir("d"), Symlink("l", "d"), File("l/.wh.x", "")},
                    absl::StatusCode::kFailedPrecondition,
                    "layer entry \"l/.wh.x\": would be written through the symlink \"l\""},
        RefusedCase{"FileAsAParent",
                    {File("f", "x"), File("f/g", "y")},
                    absl::StatusCode::kFailedPrecondition,
                    "layer entry \"f/g\": \"f\" is not a directory"}),
    [](const ::testing::TestParamInfo<RefusedCase>& info) { return std::string(info.param.name); });

// A symlink out of the root, as a broken earlier step could have left it:
// the kernel refuses to follow it (O_NOFOLLOW at every component).
TEST_F(LayerExtractTest, APlantedSymlinkOutOfTheRootIsNeverFollowed) {
  ASSERT_TRUE(MakeDirs(root()).ok());
  ASSERT_EQ(::symlink((dir_.path() + "/outside").c_str(), At("evil").c_str()), 0);
  for (const TarEntry& entry : {File("evil/f", "x"), Dir("evil/d"), File("evil/.wh.x", ""),
                                File("evil/.wh..wh..opq", "")}) {
    absl::StatusOr<ExtractStats> stats = Apply({entry});
    EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition) << entry.path;
    EXPECT_THAT(Message(stats.status()), HasSubstr("through the symlink \"evil\""));
  }
  absl::StatusOr<ExtractStats> relinked = Apply({HardLink("h", "evil/x")});
  EXPECT_EQ(relinked.status().code(), absl::StatusCode::kFailedPrecondition);
  // Replacing the symlink itself is fine: it is removed, not followed.
  ASSERT_TRUE(Apply({File("evil", "now a file")}).ok());
  EXPECT_EQ(Read("evil"), "now a file");
  EXPECT_THAT(*ListDirectory(dir_.path() + "/outside"), IsEmpty());
}

TEST_F(LayerExtractTest, RunsOfZerosStayHoles) {
  // A 64 MiB raw disk with 1 MiB of data in its middle, in an ordinary
  // (not sparse) tar entry.
  std::string disk(64 * kMiB, '\0');
  for (size_t i = 32 * kMiB; i < 33 * kMiB; ++i) disk[i] = static_cast<char>(i % 251 + 1);
  disk[40 * kMiB + 100] = 'x';  // A lone byte: one 4 KiB block.
  absl::StatusOr<ExtractStats> stats = Apply({File("disk/root.img", disk)});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->bytes, 64 * kMiB);
  struct stat st;
  ASSERT_EQ(::stat(At("disk/root.img").c_str(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), 64 * kMiB);
  EXPECT_LE(static_cast<size_t>(st.st_blocks) * 512, 2 * kMiB) << "the zeros were written";
  EXPECT_TRUE(Read("disk/root.img") == disk);
}

TEST_F(LayerExtractTest, SparseTarEntriesStaySparse) {
  // GNU tar's own sparse formats (old GNU and pax 1.0), from a sparse file.
  const std::string source = dir_.path() + "/outside/sparse.img";
  std::string expected(64 * kMiB, '\0');
  expected.replace(32 * kMiB, 5, "hello");
  for (const char* format : {"gnu", "pax"}) {
    SCOPED_TRACE(format);
    ASSERT_TRUE(RemoveTree(root()).ok());
    int fd = ::open(source.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 64 * kMiB), 0);
    ASSERT_EQ(::pwrite(fd, "hello", 5, 32 * kMiB), 5);
    ::close(fd);
    const std::string tar = dir_.path() + "/outside/sparse.tar";
    absl::StatusOr<ProcessResult> made =
        RunProcess({"tar", StrCat("--format=", format), "--sparse", "-C", dir_.path() + "/outside",
                    "-cf", tar, "sparse.img"});
    ASSERT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->output : "no tar");
    absl::StatusOr<std::string> bytes = ReadFile(tar);
    ASSERT_TRUE(bytes.ok());
    EXPECT_LT(bytes->size(), 64 * 1024u);
    ASSERT_TRUE(RemoveFileIfExists(tar).ok());
    ASSERT_TRUE(RemoveFileIfExists(source).ok());
    Extracted extracted = Extract(*bytes, root());
    ASSERT_TRUE(extracted.stats.ok()) << extracted.stats.status();
    struct stat st;
    ASSERT_EQ(::stat(At("sparse.img").c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), 64 * kMiB);
    EXPECT_LE(static_cast<size_t>(st.st_blocks) * 512, 64 * 1024u);
    EXPECT_TRUE(Read("sparse.img") == expected);
  }
}

TEST_F(LayerExtractTest, ACancelledExtractionStops) {
  std::atomic<bool> cancelled = true;
  Extracted extracted = Extract(MakeTar({File("a", "a")}), root(), 0, &cancelled);
  EXPECT_EQ(extracted.stats.status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(Exists("a"));
}

TEST_F(LayerExtractTest, GarbageIsInvalidAndAnEmptyStreamIsAnEmptyLayer) {
  Extracted garbage = Extract(std::string(10000, 'g'), root());
  EXPECT_EQ(garbage.stats.status().code(), absl::StatusCode::kInvalidArgument)
      << garbage.stats.status();
  Extracted empty = Extract("", root());
  ASSERT_TRUE(empty.stats.ok()) << empty.stats.status();
  EXPECT_EQ(empty.stats->files, 0u);
  const std::string tar = Compress(MakeTar({File("a", std::string(100000, 'a'))}), "gzip");
  Extracted truncated = Extract(tar.substr(0, tar.size() / 2), root());
  EXPECT_EQ(truncated.stats.status().code(), absl::StatusCode::kInvalidArgument)
      << truncated.stats.status();
}

// Not a benchmark: a rough figure for the log, and a bound that only a
// pathological slowdown (per-byte syscalls) would break.
TEST_F(LayerExtractTest, ExtractsAtMemorySpeed) {
  std::string data(256 * kMiB, '\0');
  for (size_t i = 0; i < data.size(); i += 512) data[i] = static_cast<char>(i / 512 % 255 + 1);
  const std::string tar = MakeTar({File("disk/root.img", data)});
  data.clear();
  auto start = std::chrono::steady_clock::now();
  Extracted extracted = Extract(tar, root());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(extracted.stats.ok()) << extracted.stats.status();
  std::printf("extracted 256 MiB in %.3f s: %.0f MiB/s\n", seconds, 256 / seconds);
  EXPECT_LT(seconds, 30);
}

}  // namespace
}  // namespace vmlet::image

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);  // A writer of a closed pipe gets EPIPE.
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

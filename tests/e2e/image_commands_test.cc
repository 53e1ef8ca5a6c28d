// End-to-end test of `vmletctl image ...` against a real vmletd (fake VM
// driver): import a disk file, list, inspect, run a pod from it, remove it
// while the pod uses it, pull failures, and a pull from a local registry
// (tests/image/registry.sh) with its progress lines.
//
// Needs $VMLETD, $VMLETCTL and qemu-img; without them the test exits 77,
// which meson reports as skipped. The registry case also needs
// $VMLET_REGISTRY_SH, docker-registry and skopeo, and is skipped alone.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/status.h"
#include "base/str_util.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// The image names below, as vmletd normalises them.
constexpr char kDiskName[] = "vms/tiny-disk:1";
constexpr char kDiskTag[] = "docker.io/vms/tiny-disk:1";

bool IsDir(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::string Chomp(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

// Runs a shell script with `args` as $0, $1, ...; stdout is captured,
// stderr goes to the test's.
absl::StatusOr<ExitStatus> Shell(const std::string& script, std::vector<std::string> args = {},
                                 absl::Duration timeout = absl::Seconds(60)) {
  std::vector<std::string> argv = {"/bin/sh", "-c", script};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, timeout);
}

// A directory of the test's own under /tmp, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string templ = "/tmp/vmlet-e2e-image-XXXXXX";
    if (::mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~TempDir() {
    if (!path_.empty()) (void)RemoveTree(path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A 16 MiB qcow2 file (qemu-img create).
absl::Status MakeQcow2(const std::string& path) {
  VMLET_ASSIGN_OR_RETURN(ExitStatus made,
                         Shell("exec qemu-img create -q -f qcow2 \"$0\" 16M", {path}));
  if (made.code != 0) return absl::InternalError(StrCat("qemu-img create \"", path, "\" failed"));
  return absl::OkStatus();
}

class ImageCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(tmp_.path().empty()) << "mkdtemp failed"; }

  void TearDown() override {
    if (HasFailure() && vmletd_ != nullptr) {
      std::cerr << "---- log of vmletd in " << vmletd_->dir() << " ----\n"
                << vmletd_->Log() << "---- end of the log of vmletd ----\n";
    }
  }

  // Starts a vmletd whose config ends with `extra_yaml`.
  void StartVmletd(const std::string& extra_yaml = "") {
    vmletd_ = std::make_unique<VmletdProcess>(extra_yaml);
    ASSERT_TRUE(vmletd_->init_status().ok()) << vmletd_->init_status();
    absl::Status started = vmletd_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  // vmletctl with both endpoints of this test's vmletd, run in `cwd` (when
  // given); `stderr_to` is "" (stderr passes through to the test's), "&1"
  // (captured with stdout) or a file to write it to.
  ExitStatus Ctl(const std::vector<std::string>& args, const std::string& stderr_to = "",
                 const std::string& cwd = "") {
    static constexpr char kScript[] = R"sh(
cd "$0" || exit 126
err=$1
shift
case "$err" in
  "") exec "$@" ;;
  "&1") exec "$@" 2>&1 ;;
  *) exec "$@" 2>"$err" ;;
esac
)sh";
    std::vector<std::string> argv = {cwd.empty() ? "." : cwd,
                                     stderr_to,
                                     VmletctlBinary(),
                                     "--endpoint",
                                     vmletd_->socket_path(),
                                     "--vmspec-endpoint",
                                     vmletd_->dir() + "/vmspec.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<ExitStatus> run = Shell(kScript, argv);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : ExitStatus{};
  }

  // Imports a fresh 16 MiB qcow2 as kDiskName; returns the image id.
  std::string ImportDisk() {
    const std::string disk = tmp_.path() + "/tiny.qcow2";
    absl::Status made = MakeQcow2(disk);
    EXPECT_TRUE(made.ok()) << made;
    // A relative path: vmletctl makes it absolute for vmletd.
    ExitStatus imported =
        Ctl({"image", "import", "tiny.qcow2", "--name", kDiskName}, "", tmp_.path());
    EXPECT_EQ(imported.code, 0) << imported.output;
    const std::string id = Chomp(imported.output);
    EXPECT_THAT(id, MatchesRegex("sha256:[0-9a-f]{64}"));
    return id;
  }

  // <state_dir>/images/sha256/<hex> of image `id`.
  std::string ImageDir(const std::string& id) {
    return StrCat(vmletd_->state_dir(), "/images/sha256/", id.substr(7));
  }

  TempDir tmp_;
  std::unique_ptr<VmletdProcess> vmletd_;
};

TEST_F(ImageCommandsTest, ImportsListsInspectsAndRunsAPodFromADiskFile) {
  ASSERT_NO_FATAL_FAILURE(StartVmletd());
  const std::string id = ImportDisk();
  ASSERT_FALSE(HasFailure());
  EXPECT_TRUE(IsDir(ImageDir(id))) << ImageDir(id);

  ExitStatus ls = Ctl({"image", "ls"});
  ASSERT_EQ(ls.code, 0) << ls.output;
  EXPECT_THAT(ls.output, ContainsRegex("^IMAGE +ID +SIZE +LAYOUT\n"));
  EXPECT_THAT(ls.output, ContainsRegex(StrCat("\n", kDiskTag, " +", id.substr(7, 12),
                                              " +[0-9.]+[KM]iB +disk\n")));
  // The fake driver's local image is listed too.
  EXPECT_THAT(ls.output, HasSubstr(kFakeImage));
  ExitStatus images = Ctl({"images"});
  EXPECT_EQ(images.output, ls.output);

  ExitStatus json = Ctl({"-o", "json", "image", "ls"});
  ASSERT_EQ(json.code, 0) << json.output;
  EXPECT_THAT(json.output,
              AllOf(HasSubstr(StrCat("\"id\": \"", id, "\"")),
                    ContainsRegex(StrCat("\"repoTags\": \\[\n *\"", kDiskTag, "\"")),
                    HasSubstr("\"layout\": \"disk\""), HasSubstr("\"pinned\": false")));
  ExitStatus quiet = Ctl({"image", "ls", "-q"});
  EXPECT_THAT(quiet.output, HasSubstr(id + "\n"));

  for (const std::string& ref : {std::string(kDiskName), id, id.substr(7)}) {
    SCOPED_TRACE(ref);
    ExitStatus inspect = Ctl({"image", "inspect", ref});
    ASSERT_EQ(inspect.code, 0) << inspect.output;
    EXPECT_THAT(inspect.output,
                AllOf(HasSubstr("\"image\": {"), HasSubstr(StrCat("\"id\": \"", id, "\"")),
                      HasSubstr(kDiskTag), HasSubstr("\"layout\": \"disk\""),
                      HasSubstr("\"source\": \"import\""),
                      HasSubstr(StrCat("\"origin\": \"", tmp_.path(), "/tiny.qcow2\""))));
  }

  ExitStatus run = Ctl({"run", "web", "--image", kDiskName}, "&1");
  ASSERT_EQ(run.code, 0) << run.output;
  ExitStatus pods = Ctl({"ls"});
  EXPECT_THAT(pods.output, ContainsRegex("\nweb +default +running "));
  ExitStatus rm = Ctl({"rm", "web", "--timeout", "2"}, "&1");
  EXPECT_EQ(rm.code, 0) << rm.output;
  // Not used any more: removing it deletes it.
  ExitStatus rmi = Ctl({"image", "rm", kDiskName}, "&1");
  ASSERT_EQ(rmi.code, 0) << rmi.output;
  EXPECT_THAT(rmi.output, HasSubstr(StrCat("removed ", kDiskName, " (", id, ")")));
  EXPECT_FALSE(IsDir(ImageDir(id)));
  EXPECT_THAT(Ctl({"image", "ls"}).output, Not(HasSubstr(kDiskTag)));
}

TEST_F(ImageCommandsTest, RemovingAnImageInUseKeepsItsFilesUntilThePodIsRemoved) {
  ASSERT_NO_FATAL_FAILURE(StartVmletd());
  const std::string id = ImportDisk();
  ASSERT_FALSE(HasFailure());
  ExitStatus run = Ctl({"run", "db", "--image", kDiskName}, "&1");
  ASSERT_EQ(run.code, 0) << run.output;

  ExitStatus rmi = Ctl({"image", "rm", kDiskName}, "&1");
  ASSERT_EQ(rmi.code, 0) << rmi.output;
  EXPECT_THAT(Ctl({"image", "ls"}).output, Not(HasSubstr(kDiskTag)));
  ExitStatus inspect = Ctl({"image", "inspect", kDiskName}, "&1");
  EXPECT_EQ(inspect.code, 1) << inspect.output;
  EXPECT_TRUE(IsDir(ImageDir(id))) << "the pod's VM still uses " << ImageDir(id);

  ExitStatus rm = Ctl({"rm", "db", "--timeout", "2"}, "&1");
  ASSERT_EQ(rm.code, 0) << rm.output;
  EXPECT_FALSE(IsDir(ImageDir(id))) << ImageDir(id) << " outlived the last pod that used it";
}

TEST_F(ImageCommandsTest, ReportsAbsentImagesAndFiles) {
  ASSERT_NO_FATAL_FAILURE(StartVmletd());
  const std::string missing = tmp_.path() + "/no-such.qcow2";
  ExitStatus import = Ctl({"image", "import", missing, "--name", "vms/x:1"}, "&1");
  EXPECT_EQ(import.code, 1) << import.output;
  EXPECT_THAT(import.output, AllOf(HasSubstr(missing), HasSubstr("No such file or directory")));

  ExitStatus inspect = Ctl({"image", "inspect", "vms/absent:1"}, "&1");
  EXPECT_EQ(inspect.code, 1) << inspect.output;
  EXPECT_THAT(inspect.output, HasSubstr("image \"vms/absent:1\" not found"));

  // One absent, one present that cannot go (a local image): both named.
  ExitStatus rm = Ctl({"image", "rm", "vms/absent:1", kFakeImage}, "&1");
  EXPECT_EQ(rm.code, 1) << rm.output;
  EXPECT_THAT(rm.output,
              AllOf(HasSubstr("image \"vms/absent:1\" not found"),
                    HasSubstr(StrCat("RemoveImage \"", kFakeImage, "\"")),
                    HasSubstr("FAILED_PRECONDITION"), HasSubstr("could not remove 2 of 2 images")));
}

TEST_F(ImageCommandsTest, PullFromAClosedPortFailsWithUnavailable) {
  ASSERT_NO_FATAL_FAILURE(StartVmletd("registries:\n  \"127.0.0.1:1\":\n    insecure: true\n"));
  ExitStatus pull = Ctl({"image", "pull", "127.0.0.1:1/x:1"}, "&1");
  EXPECT_EQ(pull.code, 1) << pull.output;
  EXPECT_THAT(pull.output,
              AllOf(HasSubstr("PullImage \"127.0.0.1:1/x:1\""), HasSubstr("(UNAVAILABLE)")));
  EXPECT_THAT(pull.output, Not(HasSubstr("\ndone")));
}

// Writes an OCI image layout to $0 holding one image, tag "1": a gzipped
// layer with disk/root.qcow2 (16 MiB, empty).
constexpr char kMakeOciLayout[] = R"sh(
set -eu
out=$0
work=$out.work
mkdir -p "$work/layer/disk" "$out/blobs/sha256"
qemu-img create -q -f qcow2 "$work/layer/disk/root.qcow2" 16M
tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$work/layer" -cf - disk | gzip -n >"$work/layer.tar.gz"
diff_id=$(gzip -dc "$work/layer.tar.gz" | sha256sum | cut -d' ' -f1)
blob() {
  h=$(sha256sum "$1" | cut -d' ' -f1)
  cp "$1" "$out/blobs/sha256/$h"
  echo "$h"
}
layer=$(blob "$work/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$diff_id" >"$work/config.json"
config=$(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config" "$(stat -c %s "$work/config.json")" "$layer" "$(stat -c %s "$work/layer.tar.gz")" \
  >"$work/manifest.json"
manifest=$(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
  "$manifest" "$(stat -c %s "$work/manifest.json")" >"$out/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
rm -rf "$work"
)sh";

// A registry of tests/image/registry.sh, stopped with the object.
class Registry {
 public:
  explicit Registry(std::string dir) : dir_(std::move(dir)) {}
  ~Registry() {
    if (started_) (void)RunCommand({"/bin/sh", Script(), "stop", dir_});
  }

  static std::string Script() {
    const char* script = std::getenv("VMLET_REGISTRY_SH");
    return script != nullptr ? script : "";
  }

  // The exit code of `registry.sh start` (77: cannot run here).
  int Start() {
    started_ = true;
    absl::StatusOr<ExitStatus> started = RunCommand({"/bin/sh", Script(), "start", dir_});
    if (!started.ok()) return -1;
    return started->code;
  }

  std::string Address() const {
    absl::StatusOr<std::string> address = ReadFile(dir_ + "/address");
    return address.ok() ? Chomp(*address) : "";
  }

 private:
  std::string dir_;
  bool started_ = false;
};

TEST_F(ImageCommandsTest, PullsFromARegistryPrintingPlainProgressLinesAndTheId) {
  if (Registry::Script().empty()) GTEST_SKIP() << "$VMLET_REGISTRY_SH is not set";
  if (::access("/usr/bin/skopeo", X_OK) != 0) GTEST_SKIP() << "skopeo is not installed";
  Registry registry(tmp_.path() + "/registry");
  const int started = registry.Start();
  if (started == 77) GTEST_SKIP() << "registry.sh cannot run a registry here";
  ASSERT_EQ(started, 0) << "registry.sh start failed";
  const std::string address = registry.Address();
  ASSERT_THAT(address, MatchesRegex("127\\.0\\.0\\.1:[0-9]+"));

  const std::string layout = tmp_.path() + "/oci";
  absl::StatusOr<ExitStatus> made = Shell(kMakeOciLayout, {layout});
  ASSERT_TRUE(made.ok() && made->code == 0) << "making the OCI layout failed";
  const std::string ref = StrCat(address, "/vmlet-test/tiny:1");
  absl::StatusOr<ExitStatus> copied =
      RunCommand({"/usr/bin/skopeo", "copy", "--quiet", "--insecure-policy",
                  "--dest-tls-verify=false", StrCat("oci:", layout, ":1"), "docker://" + ref},
                 absl::Seconds(60));
  ASSERT_TRUE(copied.ok() && copied->code == 0) << "skopeo copy to " << ref << " failed";

  ASSERT_NO_FATAL_FAILURE(
      StartVmletd(StrCat("registries:\n  \"", address, "\":\n    insecure: true\n")));
  const std::string progress_file = tmp_.path() + "/progress";
  ExitStatus pull = Ctl({"image", "pull", ref}, progress_file);
  absl::StatusOr<std::string> progress = ReadFile(progress_file);
  ASSERT_TRUE(progress.ok()) << progress.status();
  ASSERT_EQ(pull.code, 0) << *progress;
  // Only the id on stdout; on stderr (not a terminal) plain lines.
  EXPECT_THAT(pull.output, MatchesRegex("sha256:[0-9a-f]{64}\n"));
  EXPECT_THAT(*progress, Not(HasSubstr("\r")));
  EXPECT_THAT(*progress, ContainsRegex("^resolving\n"));
  const std::string size = "[0-9.]+ (B|[KMG]iB)";
  EXPECT_THAT(*progress,
              ContainsRegex(StrCat("\ndownloading ", size, " / ", size, " \\([0-9]+%\\)\n")));
  EXPECT_THAT(*progress, ContainsRegex(StrCat("\nverifying ", size, " / ", size, " \\(100%\\)\n")));
  EXPECT_THAT(*progress, ContainsRegex(StrCat("\ndone ", size, " in 0:[0-9]{2}\n$")));
  const std::string id = Chomp(pull.output);

  ExitStatus ls = Ctl({"image", "ls", "--digests"});
  EXPECT_THAT(ls.output, ContainsRegex("^IMAGE +DIGEST +ID +SIZE +LAYOUT\n"));
  EXPECT_THAT(ls.output, ContainsRegex(StrCat("\n", ref, " +sha256:[0-9a-f]{64} +",
                                              id.substr(7, 12), " +[0-9.]+[KM]iB +disk\n")));
  ExitStatus inspect = Ctl({"image", "inspect", ref});
  EXPECT_THAT(inspect.output,
              AllOf(HasSubstr("\"source\": \"registry\""), HasSubstr("\"layout\": \"disk\"")));

  // Pulled again: stored already, the same id.
  ExitStatus again = Ctl({"image", "pull", "-q", ref}, progress_file);
  EXPECT_EQ(again.code, 0);
  EXPECT_EQ(again.output, pull.output);
  EXPECT_EQ(ReadFile(progress_file).value_or("?"), "");
}

// Bad usage needs no vmletd: vmletctl refuses before it connects.
struct Usage {
  std::vector<std::string> args;
  int code;
  std::string message;
};

TEST(ImageCommandsUsageTest, ExitsTwoForBadUsageAndPrintsHelpOnEveryLevel) {
  const Usage cases[] = {
      {{"image"}, 2, "usage: vmletctl [options] image COMMAND"},
      {{"image", "bogus"}, 2, "unknown command \"image bogus\""},
      {{"image", "pull"}, 2, "\"image pull\" needs 1 argument"},
      {{"image", "pull", "x", "--creds", "nocolon"},
       2,
       "--creds is invalid: expected USER:PASSWORD"},
      {{"image", "pull", "x", "--user", "u"}, 2, "--user \"u\" needs a password"},
      {{"image", "pull", "x", "--password", "p"}, 2, "a password needs --user USER"},
      {{"image", "pull", "x", "--creds", "u:p", "--user", "v"}, 2, "--creds cannot be combined"},
      {{"image", "ls", "-o", "xml"}, 2, "-o \"xml\" is invalid: expected table or json or yaml"},
      {{"images", "extra"}, 2, "\"image ls\" takes at most 0 arguments"},
      {{"image", "rm"}, 2, "\"image rm\" needs at least 1 argument"},
      {{"image", "inspect"}, 2, "\"image inspect\" needs 1 argument"},
      {{"image", "import", "f.qcow2"}, 2, "--name is required"},
      {{"--vmspec-endpoint"}, 2, "--vmspec-endpoint needs a value"},
      {{"--help"}, 0, "--vmspec-endpoint ADDR"},
      {{"image", "--help"}, 0, "usage: vmletctl [options] image COMMAND"},
      {{"image", "pull", "--help"}, 0, "usage: vmletctl [options] image pull REF"},
      {{"image", "ls", "--help"}, 0, "usage: vmletctl [options] image ls"},
      {{"images", "--help"}, 0, "--digests"},
      {{"image", "rm", "--help"}, 0, "usage: vmletctl [options] image rm REF..."},
      {{"image", "inspect", "--help"}, 0, "usage: vmletctl [options] image inspect REF"},
      {{"image", "import", "--help"}, 0, "usage: vmletctl [options] image import FILE --name REF"},
  };
  for (const Usage& c : cases) {
    SCOPED_TRACE(::testing::PrintToString(c.args));
    std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", VmletctlBinary()};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    absl::StatusOr<ExitStatus> run = RunCommand(argv);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->code, c.code) << run->output;
    EXPECT_THAT(run->output, HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  // See e2e_main.cc: an idle channel notices vmletd's GOAWAY sooner.
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  if (vmlet::e2e::VmletdBinary().empty() || vmlet::e2e::VmletctlBinary().empty()) {
    std::fprintf(stderr, "$VMLETD or $VMLETCTL is not set: nothing to test; skipping (exit 77)\n");
    return 77;
  }
  absl::StatusOr<vmlet::e2e::ExitStatus> qemu_img =
      vmlet::e2e::RunCommand({"/bin/sh", "-c", "command -v qemu-img"});
  if (!qemu_img.ok() || qemu_img->code != 0) {
    std::fprintf(stderr, "qemu-img is not installed; skipping (exit 77)\n");
    return 77;
  }
  return RUN_ALL_TESTS();
}
